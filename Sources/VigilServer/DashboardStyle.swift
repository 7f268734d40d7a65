/// The dashboard's style sheet and script, served from the binary.
enum DashboardAssets {
    static let style = #"""
        :root { --bg: #f6f7f9; --panel: #fff; --ink: #1d2330; --muted: #667085; --line: #e3e6eb;
                --ok: #1a7f37; --warn: #b7791f; --bad: #c0262d; --info: #2f6fdb; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; color: var(--ink); background: var(--bg); }
        header { display: flex; align-items: center; gap: 14px; padding: 8px 18px; background: #111827; color: #f9fafb; flex-wrap: wrap; }
        header .brand { font-weight: 700; font-size: 17px; letter-spacing: .02em; }
        header #host { color: #cbd5e1; }
        header nav { display: flex; gap: 4px; flex: 1; flex-wrap: wrap; }
        header nav a { color: #e5e7eb; text-decoration: none; padding: 4px 10px; border-radius: 6px; }
        header nav a.current, header nav a:hover { background: #374151; color: #fff; }
        header button { background: #374151; color: #f9fafb; border: 0; border-radius: 6px; padding: 4px 10px; cursor: pointer; }
        main { padding: 14px 18px; display: grid; gap: 14px; }
        footer { padding: 6px 18px 18px; color: var(--muted); font-size: 12px; }
        section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; min-width: 0; }
        section h2 { font-size: 15px; margin: 0 0 8px; }
        .row { display: grid; gap: 14px; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); }
        .cards { display: grid; gap: 10px; grid-template-columns: repeat(auto-fit, minmax(132px, 1fr)); }
        .card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
        .card .label { color: var(--muted); font-size: 12px; }
        .card .value { font-size: 22px; font-weight: 650; margin-top: 2px; white-space: nowrap; }
        .card .sub { color: var(--muted); font-size: 12px; }
        .card canvas { width: 100%; height: 34px; display: block; margin-top: 4px; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: 12px; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .muted { color: var(--muted); }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #e5e7eb; color: #111827; }
        .badge.ok, .badge.active, .badge.running, .badge.succeeded, .badge.firing-none { background: #dcfce7; color: var(--ok); }
        .badge.warning, .badge.pending, .badge.queued, .badge.paused, .badge.medium { background: #fef3c7; color: var(--warn); }
        .badge.critical, .badge.error, .badge.failed, .badge.firing, .badge.lost, .badge.high-severity { background: #fee2e2; color: var(--bad); }
        .badge.info, .badge.starting { background: #dbeafe; color: var(--info); }
        .bar { position: relative; height: 16px; background: #eef0f3; border-radius: 4px; min-width: 90px; overflow: hidden; }
        .bar > span { position: absolute; left: 0; top: 0; bottom: 0; background: #3b82f6; }
        .bar.hot > span { background: #ef4444; } .bar.warm > span { background: #f59e0b; }
        .bar > em { position: relative; font-style: normal; font-size: 11px; padding-left: 5px; line-height: 16px; }
        button.act { border: 1px solid var(--line); background: #fff; border-radius: 6px; padding: 2px 8px; cursor: pointer; margin-right: 4px; }
        button.act:hover { background: #f3f4f6; } button.act.danger { color: var(--bad); }
        select, input { font: inherit; padding: 2px 6px; border: 1px solid var(--line); border-radius: 6px; }
        .chart { position: relative; height: 240px; }
        .chart.small { height: 240px; } .chart.tall { height: 300px; }
        #notices .notice { margin: 10px 18px 0; padding: 8px 12px; border-radius: 8px; background: #fef3c7; border: 1px solid #f6d58e; }
        #notices .notice.error { background: #fee2e2; border-color: #f5b5b5; }
        details summary { cursor: pointer; color: var(--info); }
        pre.log { background: #0f172a; color: #e2e8f0; padding: 8px; border-radius: 8px; max-height: 260px; overflow: auto; font-size: 12px; }
        .card .sub.trend-up, .trend-up { color: var(--ok); } .card .sub.trend-down, .trend-down { color: var(--bad); }
        form.inline { display: flex; gap: 6px; flex-wrap: wrap; align-items: center; }
        """#
}
