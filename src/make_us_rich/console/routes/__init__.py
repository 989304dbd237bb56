"""The console's routes, one ``APIRouter`` per area: sign-in, pages, tokens, admin, API."""
