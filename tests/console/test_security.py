"""The console's pages and API over HTTP against a real database: sign-in, sessions, CSRF,
headers, throttling, roles, tokens and bad input (nothing written), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from console_helpers import ADMIN, MEMBER, OTHER, create_token, csrf, login, page_csrf, signed_in
from sqlalchemy import func, inspect, select, update

from make_us_rich.console.db import ApiToken, LoginThrottle, User, session_factory, utcnow


def count(engine, model) -> int:
    with session_factory(engine)() as db:
        return db.scalar(select(func.count()).select_from(model))


def test_probes(make_console, engine):
    console = make_console()
    with console.client() as c:
        assert c.get("/healthz").text == "ok"
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.text == "ready"


def test_api_description(make_console):
    console = make_console()
    with console.client() as c:
        spec = c.get("/openapi.json").json()
        assert list(spec["paths"]) == ["/api/v1/forecast/{symbol}"]
        assert {"200", "401", "429"} <= set(spec["paths"]["/api/v1/forecast/{symbol}"]["get"]["responses"])
        page = c.get("/docs")
        assert page.status_code == 200 and "GET /api/v1/forecast/{symbol}" in page.text
        assert "Retry-After" in page.text
        # the horizon parameter, its type and what it does
        assert "<code>horizon</code> (query, integer): hours ahead" in page.text
        assert "?horizon=24" in page.text


def test_readyz_is_503_before_the_migration(db_url, tmp_path):
    from console_helpers import Console, settings_for

    console = Console(settings_for(db_url, tmp_path / "store"))
    try:
        with console.client() as c:
            answer = c.get("/readyz")
            assert answer.status_code == 503 and "mkrich console migrate" in answer.text
    finally:
        console.stop()


def test_sign_in_sets_a_hardened_rotated_session(make_console, users):
    console = make_console()
    with console.client() as c:
        assert c.get("/tokens").headers["location"].startswith("/login")
        first = login(c, *MEMBER)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "mkrich_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie
        old = c.cookies["mkrich_session"]
        assert c.get("/tokens").status_code == 200
        second = login(c, *MEMBER)  # signing in again rotates the session
        assert second.status_code == 303
        new = c.cookies["mkrich_session"]
        assert new != old
    with console.client() as stale:
        stale.cookies.set("mkrich_session", old)
        assert stale.get("/tokens").status_code == 303  # the old session ended
    with console.client() as forged:
        forged.cookies.set("mkrich_session", new[:-3] + "AAA")
        assert forged.get("/tokens").status_code == 303


def test_secure_cookies_behind_https(make_console, users):
    console = make_console(secure_cookies=True)
    with console.client() as c:
        page = c.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        c.cookies.set("mkrich_pre", page.cookies["mkrich_pre"])  # httpx keeps Secure cookies off http
        response = c.post("/login", data={"email": MEMBER[0], "password": MEMBER[1], "csrf": csrf(page.text)})
        assert response.status_code == 303
        assert "Secure" in response.headers["set-cookie"]


def test_security_headers_on_every_answer(make_console, users):
    console = make_console()
    c = signed_in(console, MEMBER)
    for path in ("/", "/login", "/tokens", "/models", "/docs", "/static/chart.js", "/nope", "/api/v1/forecast/BTCEUR"):
        h = c.get(path).headers
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    for path in ("/", "/symbols/BTCEUR", "/tokens", "/docs", "/models"):
        body = c.get(path).text
        assert "<script>" not in body and " on" + "click=" not in body, path


def test_same_answer_for_unknown_user_and_wrong_password(make_console, engine, users):
    """One answer for both; and the same work: without an account the password is verified
    against a dummy hash with the parameters of the stored ones (no timing assertion: the
    suite keeps none, CPU is shared)."""
    from argon2 import extract_parameters

    from make_us_rich.console import auth

    console = make_console()

    def attempt(email: str) -> tuple[int, str]:
        with console.client() as c:
            page = c.get("/login")
            r = c.post("/login", data={"email": email, "password": "not-the-password", "csrf": csrf(page.text)})
            return r.status_code, r.text.replace(csrf(page.text), "").replace(email, "E-MAIL")

    known, unknown = attempt(MEMBER[0]), attempt("nobody@example.com")
    assert known == unknown and known[0] == 401
    assert "Wrong e-mail or password." in known[1]
    with session_factory(engine)() as db:
        stored = db.get(User, users["member"]).password_hash
    assert extract_parameters(auth._DUMMY_HASH) == extract_parameters(stored)
    assert not auth.verify_password(None, "not-the-password")


def throttle_row(engine, key: str) -> LoginThrottle | None:
    with session_factory(engine)() as db:
        return db.get(LoginThrottle, key)


def from_address(console, address: str):
    """A client seen at ``address`` (uvicorn believes X-Forwarded-For from 127.0.0.1)."""
    client = console.client()
    client.headers["X-Forwarded-For"] = address
    return client


def test_sign_in_is_throttled_per_account_and_address_with_backoff(make_console, engine, users):
    console = make_console(max_failures=3, backoff_seconds=30)
    with console.client() as c:
        for _ in range(3):
            wrong = login(c, MEMBER[0], "wrong-password-xx")
            assert wrong.status_code == 401
            assert f'value="{MEMBER[0]}"' in wrong.text  # a wrong password keeps the e-mail
        blocked = login(c, *MEMBER)  # even the right password waits
        wait = int(blocked.headers["retry-after"])
        assert blocked.status_code == 429 and 25 <= wait <= 30
        assert "Too many failed sign-ins: try again in " in blocked.text
        until = blocked.text.split("(at ")[1].split(" UTC)")[0]  # and says when, in UTC
        assert abs((datetime.strptime(until, "%H:%M:%S") - datetime.strptime(f"{utcnow():%H:%M:%S}", "%H:%M:%S"))
                   .total_seconds() % 86400 - wait) <= 5
        assert login(c, *OTHER).status_code == 303  # another account from the same address
    with session_factory(engine)() as db:
        row = db.get(LoginThrottle, f"pair:127.0.0.1|{MEMBER[0]}")
        row.blocked_until = utcnow() - timedelta(seconds=1)  # the wait is over
        db.commit()
    with console.client() as c:
        assert login(c, MEMBER[0], "wrong-password-xx").status_code == 401
        again = login(c, *MEMBER)  # the 4th failure doubled the wait
        assert again.status_code == 429 and 55 <= int(again.headers["retry-after"]) <= 60


def test_an_attacker_elsewhere_cannot_keep_a_user_out(make_console, engine, users):
    """Issue 19 #8: failures are counted per (account, address); the higher account-wide limit
    blocks new addresses only, never one the account has signed in from."""
    console = make_console(max_failures=3, account_max_failures=6, backoff_seconds=30)
    home = from_address(console, "198.51.100.7")
    assert login(home, *MEMBER).status_code == 303
    with from_address(console, "203.0.113.9") as attacker:
        for _ in range(3):
            assert login(attacker, MEMBER[0], "guess-password-xx").status_code == 401
        assert login(attacker, MEMBER[0], "guess-password-xx").status_code == 429
    for i in range(3):  # more guesses from elsewhere: the account-wide count reaches its limit
        with from_address(console, f"203.0.113.{20 + i}") as attacker:
            assert login(attacker, MEMBER[0], "guess-password-xx").status_code == 401
    with from_address(console, "192.0.2.50") as unknown:
        assert login(unknown, *MEMBER).status_code == 429  # a new address waits
    with from_address(console, "198.51.100.7") as again:
        assert login(again, *MEMBER).status_code == 303  # the owner, from home, does not
    assert throttle_row(engine, f"account:{MEMBER[0]}").failures == 6


def test_failures_from_a_shared_address_do_not_lock_out_its_known_accounts(make_console, users):
    """Everyone on 127.0.0.1 (or behind one NAT) shares the address-wide count: accounts that
    have signed in from there before are spared its block."""
    console = make_console(address_max_failures=4, backoff_seconds=30)
    assert login(console.client(), *ADMIN).status_code == 303
    with console.client() as c:
        for i in range(4):
            assert login(c, f"user{i}@example.com", "wrong-password-xx").status_code == 401
        assert login(c, *MEMBER).status_code == 429  # never signed in from here
        assert login(c, *ADMIN).status_code == 303


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\n", "\x7f", "\u0085"])
def test_control_characters_in_sign_in_are_400_and_counted(make_console, engine, users, char):
    """Issue 19 #1: a NUL in the e-mail was a 500 on PostgreSQL, and the attempt went uncounted
    (the insert that counts it failed on the NUL)."""
    console = make_console()
    with console.client() as c:
        token = csrf(c.get("/login").text)
        for form in ({"email": f"a{char}b@x.io", "password": "x" * 12},
                     {"email": MEMBER[0], "password": f"{MEMBER[1]}{char}"}):
            answer = c.post("/login", data={**form, "csrf": token})
            assert answer.status_code == 400 and "control character" in answer.text, answer.text
        assert throttle_row(engine, "address:127.0.0.1").failures == 2
        assert login(c, *MEMBER).status_code == 303  # and the server is fine


@pytest.mark.parametrize("path, form", [
    ("/admin/users", {"email": "new\x00@example.com", "password": "new-password-123"}),
    ("/admin/users", {"email": "new@example.com", "password": "new-password\x00123"}),
    ("/admin/users", {"email": "new@example.com", "password": "new-password-123", "role": "member\x00"}),
    ("/admin/users/{member}", {"monthly_quota": "7\x00"}),
    ("/tokens", {"name": "script\x00", "expires_days": "30"}),
    ("/tokens", {"name": "script", "expires_days": "3\x1b0"}),
])
def test_control_characters_in_forms_are_400_and_write_nothing(make_console, engine, users, path, form):
    console = make_console()
    admin = signed_in(console, ADMIN)
    before = count(engine, User), count(engine, ApiToken)
    answer = admin.post(path.format(**users), data={**form, "csrf": page_csrf(admin, "/admin/users")})
    assert answer.status_code == 400 and "control character" in answer.text, answer.text
    assert (count(engine, User), count(engine, ApiToken)) == before
    with session_factory(engine)() as db:
        assert db.get(User, users["member"]).monthly_quota == 5
    assert admin.get("/admin/users").status_code == 200


def test_control_characters_in_create_user_are_refused_by_the_library(engine):
    from make_us_rich.console.auth import InvalidInput, create_user

    with session_factory(engine)() as db, pytest.raises(InvalidInput, match="control character"):
        create_user(db, "root\x00@example.com", "a-long-admin-password")


@pytest.mark.parametrize("path", [
    "/tokens/99999999999999999999/revoke", "/tokens/2147483648/revoke", "/tokens/-1/revoke",
    "/tokens/abc/revoke", "/admin/users/99999999999999999999", "/admin/users/2147483648",
    "/admin/users/0", "/admin/users/%C2%B2",
])
def test_ids_out_of_range_are_404(make_console, engine, users, path):
    """Issue 19 #5: an id too large for the integer column was a 500 and reset the connection."""
    console = make_console()
    admin = signed_in(console, ADMIN)
    answer = admin.post(path, data={"csrf": page_csrf(admin, "/admin/users"), "role": "member"})
    assert answer.status_code == 404, answer.text
    assert admin.get("/tokens").status_code == 200


def test_csrf_is_required_and_nothing_is_written_without_it(make_console, engine, users):
    console = make_console()
    with console.client() as c:
        c.get("/login")
        assert c.post("/login", data={"email": MEMBER[0], "password": MEMBER[1]}).status_code == 403
        assert c.post("/login", data={"email": MEMBER[0], "password": MEMBER[1], "csrf": "0" * 64}).status_code == 403
    admin = signed_in(console, ADMIN)
    tokens_before, users_before = count(engine, ApiToken), count(engine, User)
    assert admin.post("/tokens", data={"name": "x"}).status_code == 403
    assert admin.post("/admin/users", data={"email": "new@example.com", "password": "p" * 20}).status_code == 403
    # a CSRF token of another session does not count either
    member = signed_in(console, MEMBER)
    assert admin.post("/tokens", data={"name": "x", "csrf": page_csrf(member)}).status_code == 403
    assert admin.post("/logout", data={}).status_code == 403
    assert (count(engine, ApiToken), count(engine, User)) == (tokens_before, users_before)
    assert admin.get("/tokens").status_code == 200  # still signed in
    assert admin.post("/logout", data={"csrf": page_csrf(admin)}).status_code == 303
    assert admin.get("/tokens").status_code == 303


def test_members_see_only_their_own_and_no_admin_pages(make_console, engine, users):
    console = make_console()
    member, other = signed_in(console, MEMBER), signed_in(console, OTHER)
    create_token(member, "member-token")
    create_token(other, "other-token")
    page = member.get("/tokens").text
    assert "member-token" in page and "other-token" not in page
    with session_factory(engine)() as db:
        other_id = db.scalar(select(ApiToken.id).where(ApiToken.name == "other-token"))
    assert member.post(f"/tokens/{other_id}/revoke", data={"csrf": page_csrf(member)}).status_code == 404
    with session_factory(engine)() as db:
        assert db.get(ApiToken, other_id).revoked_at is None
    assert member.get("/admin/users").status_code == 403
    before = count(engine, User)
    forbidden = member.post("/admin/users", data={"email": "x@example.com", "password": "p" * 20,
                                                  "csrf": page_csrf(member)})
    assert forbidden.status_code == 403 and count(engine, User) == before
    assert member.post(f"/admin/users/{users['member']}", data={"role": "admin", "csrf": page_csrf(member)}).status_code == 403
    with session_factory(engine)() as db:
        assert db.get(User, users["member"]).role == "member"


def test_admin_manages_users(make_console, engine, users):
    console = make_console()
    admin = signed_in(console, ADMIN)
    page = admin.get("/admin/users")
    assert page.status_code == 200 and MEMBER[0] in page.text
    created = admin.post("/admin/users", data={"email": "New@Example.com", "password": "new-password-123",
                                               "role": "member", "monthly_quota": "7", "csrf": csrf(page.text)})
    assert created.status_code == 303
    with session_factory(engine)() as db:
        new = db.scalar(select(User).where(User.email == "new@example.com"))
        assert new.monthly_quota == 7 and new.role == "member"
    assert admin.post(f"/admin/users/{new.id}", data={"role": "member", "monthly_quota": "9", "disabled": "1",
                                                      "csrf": page_csrf(admin, "/admin/users")}).status_code == 303
    with session_factory(engine)() as db:
        assert db.get(User, new.id).disabled and db.get(User, new.id).monthly_quota == 9
    with console.client() as c:
        assert login(c, "new@example.com", "new-password-123").status_code == 401  # disabled
    duplicate = admin.post("/admin/users", data={"email": MEMBER[0], "password": "another-password-1",
                                                 "csrf": page_csrf(admin, "/admin/users")})
    assert duplicate.status_code == 400 and "exists already" in duplicate.text
    self_demote = admin.post(f"/admin/users/{users['admin']}", data={"role": "member", "csrf": page_csrf(admin, "/admin/users")})
    assert self_demote.status_code == 400


@pytest.mark.parametrize("form, message", [
    ({"name": "n" * 65}, "longer than 64"),
    ({"name": "x'; DROP TABLE users; --"}, "token name"),
    ({"name": ""}, "token name"),
    ({"name": "ok", "expires_days": "-1"}, "expiry must be"),
    ({"name": "ok", "expires_days": "1e3"}, "number of days"),
    ({"name": "ok", "expires_days": "99999"}, "expiry must be"),
])
def test_bad_token_forms_are_400_and_write_nothing(make_console, engine, users, form, message):
    console = make_console()
    member = signed_in(console, MEMBER)
    before = count(engine, ApiToken)
    answer = member.post("/tokens", data={**form, "csrf": page_csrf(member)})
    assert answer.status_code == 400 and message in answer.text
    assert count(engine, ApiToken) == before
    assert "users" in inspect(engine).get_table_names()


def test_oversized_and_hostile_sign_in_input(make_console, engine, users):
    console = make_console()
    with console.client() as c:
        page = c.get("/login")
        token = csrf(page.text)
        assert c.post("/login", data={"email": "a" * 300 + "@x.org", "password": "p", "csrf": token}).status_code == 400
        assert c.post("/login", data={"email": "' OR '1'='1' --", "password": "' OR '1'='1", "csrf": token}).status_code == 401
        assert c.post("/login", content=b"email=" + b"a" * 70_000, headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 413
    assert count(engine, User) == 3


def test_open_redirect_is_refused(make_console, users):
    console = make_console()
    with console.client() as c:
        page = c.get("/login?next=//evil.example/x")
        assert 'value="/"' in page.text
        answer = c.post("/login", data={"email": MEMBER[0], "password": MEMBER[1], "csrf": csrf(page.text),
                                        "next": "https://evil.example/"})
        assert answer.headers["location"] == "/"
    from make_us_rich.console.web import safe_next as _safe_next

    for bad in ("/\t/evil.example", "/\\evil.example", "//evil.example", "/x//evil", "javascript:alert(1)", "/\n"):
        assert _safe_next(bad) == "/", bad
    assert _safe_next("/symbols/BTCEUR") == "/symbols/BTCEUR"


def test_api_tokens_forged_expired_revoked(make_console, engine, users):
    console = make_console()
    member = signed_in(console, MEMBER)
    token = create_token(member)
    api = console.client()

    def call(value: str | None, symbol: str = "BTCEUR"):
        headers = {"Authorization": f"Bearer {value}"} if value is not None else {}
        return api.get(f"/api/v1/forecast/{symbol}", headers=headers)

    for bad in (None, ".", "mkr_" + "A" * 43, token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 5000,
                "' OR 1=1 --"):
        answer = call(bad)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer", bad
        assert "valid API token" in answer.json()["error"]
    # a valid token reaches the symbol check: malformed 400, unknown 404 (the store here is empty)
    assert call(token, "BTC'--").status_code == 400
    assert call(token, "B" * 30).status_code == 400
    assert call(token, "DOGEEUR").status_code == 404
    with session_factory(engine)() as db:
        db.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    assert call(token).status_code == 401  # expired
    with session_factory(engine)() as db:
        db.execute(update(ApiToken).values(expires_at=None))
        db.commit()
    assert call(token, "DOGEEUR").status_code == 404  # valid again
    row = member.get("/tokens").text
    token_id = int(row.split('action="/tokens/')[1].split("/")[0])
    assert member.post(f"/tokens/{token_id}/revoke", data={"csrf": page_csrf(member)}).status_code == 303
    assert call(token, "DOGEEUR").status_code == 401  # revoked: at once
    assert "revoked" in member.get("/tokens").text


def test_tokens_are_stored_hashed_and_never_shown_again(make_console, engine, users):
    console = make_console()
    member = signed_in(console, MEMBER)
    token = create_token(member)
    assert len(token) >= 4 + 43  # 32 random bytes
    with session_factory(engine)() as db:
        row = db.scalar(select(ApiToken))
        assert row.token_hash != token and token not in (row.token_hash, row.prefix, row.name)
        assert token.startswith(row.prefix) and len(row.prefix) == 12
    page = member.get("/tokens").text
    assert token not in page and f'data-token-prefix="{token[:12]}"' in page
