"""What the commands print: the data report, the evaluation table, scores lines, summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from make_us_rich.contract import ModelScores


def _print_report(symbol: str, report) -> None:
    print(f"{symbol}: {report.rows_out} candles {report.start} .. {report.end}")
    if report.missing_candles:
        print(
            f"  gaps: {report.missing_candles} missing candle(s) in {report.gaps} gap(s) "
            f"({report.missing_fraction:.2%}), largest {report.largest_gap_candles}"
        )
    for repair in report.repairs:
        print(f"  repaired: {repair}")


def _scores_line(scores: ModelScores) -> str:
    """One line of a model's key test scores (runs, versions)."""

    def f(v, fmt="{:.4f}"):
        return "n/a" if v is None else fmt.format(v)

    return (f"pinball/A {f(scores.pinball_vs_empirical)}  pinball/GARCH "
            f"{f(scores.pinball_vs_garch_t)}  cov90 {f(scores.coverage90, '{:.3f}')}  "
            f"RMSE/persistence {f(scores.rmse_vs_persistence)}")


def _print_evaluation(symbol: str, test: dict) -> None:
    from make_us_rich.training.report import text_table

    print(f"\n{symbol}: {test['n']} forecast hours {test['period'][0]} .. {test['period'][1]}")
    print(f"  {test['units']}; bp = 1e-4; pinball ratio = model / baseline (< 1: the model is better)")
    print(text_table(test))
    price = test["price"]
    print(f"  median close in price units: RMSE {price['model']['rmse']:.6g} vs persistence "
          f"{price['persistence']['rmse']:.6g}")  # significant digits: SHIB trades at 1e-5
    if test.get("pinball_ratio_ci95"):
        ci = test["pinball_ratio_ci95"]
        print(f"  pinball ratio vs empirical {ci['ratio']:.4f}, block-bootstrap 95 % interval "
              f"{ci['low']:.4f}-{ci['high']:.4f}")


def _print_training_summary(run) -> None:
    m = run.metrics
    _print_evaluation(m["symbol"], m["test"])
    t = m["training"]
    best = "untrained = empirical quantiles" if t["best_epoch"] == 0 else str(t["best_epoch"])
    print(
        f"  training: {t['epochs_run']} epoch(s) in {t['seconds']:.1f} s, best epoch {best}; "
        f"ONNX parity max rel. error {m['parity']['max_rel_error']:.1e}"
    )
    verdict = "PASSED" if m["gate"]["passed"] else "REJECTED"
    print(f"  gate: {verdict} ({'; '.join(m['gate']['reasons'])})")


def print_symbol_table(rows: dict) -> None:
    """The per-symbol table of a universal run (test period of each symbol vs its baselines)."""
    if not rows:
        print("  no test period (test_size 0): score it with `mkrich evaluate --model DIR --symbol X`")
        return

    def f(v, fmt="{:.4f}"):
        return "n/a" if v is None else fmt.format(v)

    print(f"\n  {'symbol':<10} {'hours':>6} {'pin/A':>7} {'pin/GARCH':>9} {'pin/HAR':>8} {'cov90':>6} "
          f"{'cov50':>6} {'RMSE/pers':>9}  gate   inputs lacking")
    for sym, r in rows.items():
        if "error" in r:
            print(f"  {sym:<10} not evaluated: {r['error']}")
            continue
        lacking = ",".join((r.get("inputs") or {}).get("unavailable") or []) or "-"
        print(f"  {sym:<10} {r['n']:>6} {f(r['pinball_vs_empirical']):>7} {f(r['pinball_vs_garch_t']):>9} "
              f"{f(r['pinball_vs_har']):>8} {f(r['coverage_90'], '{:.3f}'):>6} {f(r['coverage_50'], '{:.3f}'):>6} "
              f"{f(r['median_rmse_vs_persistence']):>9}  {'pass' if r['gate'] else 'FAIL':<6} {lacking}")


def _print_summary(summary: dict | None) -> None:
    """The summary the pipeline's exit task built (and posted, with --notify-url): printed
    here, never posted a second time."""
    from make_us_rich.notify import text

    if summary is None:
        print("\nno run summary: the exit task did not run (see the kfp.local log)")
    else:
        print(f"\nrun summary\n{text(summary)}\n({summary.get('delivery', 'delivery unknown')})")
