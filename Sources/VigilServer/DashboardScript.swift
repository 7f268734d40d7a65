extension DashboardAssets {
    /// Plain JavaScript (no build step): reads the JSON API every two seconds and redraws the page.
    static let script = #"""
        'use strict';
        // Vigil's dashboard. Every figure comes from the JSON API (/api/v1/openapi.json lists it); changes use the
        // API token, which `vigil dashboard` passes in the URL's fragment (#token=…) and this page keeps locally.
        const V = { page: document.body.dataset.page, charts: {}, token: null, timer: null, busy: false, built: false };
        const POLL_MS = 2000;

        // ---- helpers -------------------------------------------------------------------------------------------
        function el(tag, attrs, ...children) {
          const node = document.createElement(tag);
          for (const [key, value] of Object.entries(attrs || {})) {
            if (value === undefined || value === null || value === false) continue;
            if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
            else if (key === 'text') node.textContent = value;
            else node.setAttribute(key, value === true ? '' : value);
          }
          for (const child of children.flat(Infinity)) {
            if (child === null || child === undefined || child === false) continue;
            node.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return node;
        }
        const $ = (id) => document.getElementById(id);
        function setText(id, text) { const node = $(id); if (node) node.textContent = text; }
        function fill(id, ...rows) { const node = $(id); if (node) node.replaceChildren(...rows.flat()); }
        const isNum = (x) => typeof x === 'number' && isFinite(x);
        function pct(x, digits = 0) { return isNum(x) ? (x * 100).toFixed(digits) + ' %' : '–'; }
        function bytes(n) {
          if (!isNum(n)) return '–';
          const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
          let i = 0; while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
        }
        function money(x, currency) { return isNum(x) ? x.toFixed(2) + (currency ? ' ' + currency : '') : '–'; }
        function number(x, digits = 2) {
          if (!isNum(x)) return '–';
          if (Math.abs(x) >= 1000) return x.toLocaleString('en', { maximumFractionDigits: 0 });
          return Number(x.toPrecision(4)).toString();
        }
        function duration(ms) {
          if (!isNum(ms)) return '–';
          let s = Math.max(0, Math.round(ms / 1000));
          const d = Math.floor(s / 86400); s -= d * 86400;
          const h = Math.floor(s / 3600); s -= h * 3600;
          const m = Math.floor(s / 60); s -= m * 60;
          if (d) return d + 'd ' + h + 'h';
          if (h) return h + 'h ' + m + 'm';
          if (m) return m + 'm ' + s + 's';
          return s + 's';
        }
        function clock(ms) {
          if (!isNum(ms)) return '–';
          const date = new Date(ms);
          const sameDay = new Date().toDateString() === date.toDateString();
          const hm = date.toTimeString().slice(0, 5);
          return sameDay ? hm : date.toISOString().slice(5, 10) + ' ' + hm;
        }
        function ago(ms) { return isNum(ms) ? duration(Date.now() - ms) + ' ago' : '–'; }
        function badge(text, kind) { return el('span', { class: 'badge ' + String(kind || text).toLowerCase() }, text); }
        function bar(ratio, text) {
          const value = isNum(ratio) ? Math.max(0, Math.min(1, ratio)) : 0;
          const heat = value >= 0.85 ? ' hot' : value >= 0.6 ? ' warm' : '';
          // The width through the CSSOM: the page's Content-Security-Policy refuses style attributes.
          const fill = el('span', {});
          fill.style.width = (value * 100).toFixed(1) + '%';
          return el('div', { class: 'bar' + heat }, fill, el('em', {}, text));
        }
        function labelText(labels, skip = ['alertname', 'severity', 'uuid', 'pci_bus_id', 'model']) {
          return Object.entries(labels || {}).filter(([k]) => !skip.includes(k)).map(([k, v]) => k + '="' + v + '"').join(', ');
        }
        function table(head, rows, numeric = []) {
          return el('table', {},
            el('thead', {}, el('tr', {}, head.map((h, i) => el('th', { class: numeric.includes(i) ? 'num' : null }, h)))),
            el('tbody', {}, rows.length ? rows.map((row) => el('tr', row.attrs || {},
              (row.cells || row).map((cell, i) => el('td', { class: numeric.includes(i) ? 'num' : null }, cell)))) :
              el('tr', {}, el('td', { colspan: head.length, class: 'muted' }, 'none'))));
        }

        // ---- notices, token and the API --------------------------------------------------------------------------
        function notice(key, text, kind) {
          let node = document.querySelector('[data-notice="' + key + '"]');
          if (!text) { if (node) node.remove(); return; }
          if (!node) { node = el('div', { class: 'notice ' + (kind || ''), 'data-notice': key }); $('notices').append(node); }
          node.textContent = text;
        }
        function loadToken() {
          const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
          if (match) {
            try { localStorage.setItem('vigil-token', decodeURIComponent(match[1])); } catch (e) { V.token = decodeURIComponent(match[1]); }
            history.replaceState(null, '', location.pathname + location.search);
          }
          try { V.token = V.token || localStorage.getItem('vigil-token'); } catch (e) { /* storage off */ }
          $('token').textContent = V.token ? 'Token ✓' : 'Token';
        }
        $('token').addEventListener('click', () => {
          const value = prompt('API token (from DATA_DIR/api-token, or run `vigil dashboard`). Leave empty to forget it.', '');
          if (value === null) return;
          V.token = value.trim() || null;
          try { if (V.token) localStorage.setItem('vigil-token', V.token); else localStorage.removeItem('vigil-token'); } catch (e) { /* storage off */ }
          $('token').textContent = V.token ? 'Token ✓' : 'Token';
        });

        async function api(path, options = {}) {
          const headers = Object.assign({ Accept: 'application/json' }, options.headers || {});
          if (V.token) headers.Authorization = 'Bearer ' + V.token;
          if (options.body !== undefined) headers['Content-Type'] = 'application/json';
          const response = await fetch(path, { method: options.method || 'GET', headers,
            body: options.body === undefined ? undefined : JSON.stringify(options.body) });
          const text = await response.text();
          let data = null;
          try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
          if (!response.ok) {
            const error = new Error((data && data.error) || (response.status + ' ' + response.statusText));
            error.status = response.status;
            throw error;
          }
          return data;
        }
        /// A change: asks for the token when the daemon says it needs one, then redraws at once.
        async function act(label, path, body, method = 'POST') {
          try {
            await api(path, { method, body });
            notice('action', label + ': done');
            setTimeout(() => notice('action', null), 4000);
          } catch (error) {
            if (error.status === 401) {
              notice('action', label + ': ' + error.message + '. Press Token and paste it, or open the URL `vigil dashboard` prints.', 'error');
            } else {
              notice('action', label + ': ' + error.message, 'error');
            }
          }
          refresh();
        }

        // ---- charts (Chart.js 3 from Debian; the page says so when it is missing) ---------------------------------
        const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];
        function chartsAvailable() {
          if (typeof Chart !== 'undefined') return true;
          notice('chartjs', 'Charts are off: Chart.js is not installed on the daemon\'s host. On Debian: apt-get install libjs-chart.js, then reload this page (no restart needed).', 'error');
          return false;
        }
        function chart(id, type, data, options) {
          if (!chartsAvailable()) return null;
          const existing = V.charts[id];
          if (existing) {
            existing.data.labels = data.labels;
            existing.data.datasets = data.datasets;
            existing.update('none');
            return existing;
          }
          const canvas = $(id);
          if (!canvas) return null;
          V.charts[id] = new Chart(canvas, { type, data, options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
            plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } }, options || {}) });
          document.body.dataset.charts = String(Object.keys(V.charts).length);
          return V.charts[id];
        }
        function series(color, label, values, extra) {
          // Points show while a line is short (a fresh daemon has a few); a long one is a plain line.
          const few = values.filter((v) => v !== null && v !== undefined).length < 8;
          return Object.assign({ label, data: values, borderColor: color, backgroundColor: color + '33', pointRadius: few ? 2.5 : 0, borderWidth: 2,
            tension: 0.2, spanGaps: true }, extra || {});
        }
        /// The last 15 minutes in 15 s steps, aligned so that several queries share their timestamps.
        function window15m() {
          const end = Math.floor(Date.now() / 15000) * 15;
          return { start: String(end - 900), end: String(end), step: '15s' };
        }
        /// A range query drawn as one line per series; `name` labels a series from its labels.
        async function rangeChart(id, params, name, scale) {
          const query = new URLSearchParams(Object.assign(window15m(), params));
          const reply = await api('/api/v1/query_range?' + query);
          const times = [...new Set(reply.result.flatMap((s) => s.samples.map((p) => p[0])))].sort((a, b) => a - b);
          const labels = times.map((t) => new Date(t * 1000).toTimeString().slice(0, 8));
          const datasets = reply.result.map((s, i) => {
            const byTime = new Map(s.samples.map((p) => [p[0], p[1] * (scale || 1)]));
            return series(PALETTE[i % PALETTE.length], name(s.labels), times.map((t) => byTime.has(t) ? byTime.get(t) : null));
          });
          chart(id, 'line', { labels, datasets }, { scales: { y: { beginAtZero: true } } });
          return reply;
        }
        /// A small trend line drawn straight on a canvas (a score card holds one per benchmark).
        function sparkline(canvas, values) {
          const ctx = canvas.getContext && canvas.getContext('2d');
          if (!ctx || values.length < 2) return;
          const w = canvas.width = canvas.clientWidth || 140, h = canvas.height = canvas.clientHeight || 34;
          const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
          ctx.strokeStyle = '#2563eb'; ctx.lineWidth = 1.5; ctx.beginPath();
          values.forEach((v, i) => {
            const x = (i / (values.length - 1)) * (w - 4) + 2, y = h - 3 - ((v - lo) / span) * (h - 6);
            if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
          });
          ctx.stroke();
        }

        // ---- pages ---------------------------------------------------------------------------------------------
        function card(id, label) {
          return el('div', { class: 'card' }, el('div', { class: 'label' }, label), el('div', { class: 'value', id }, '–'),
            el('div', { class: 'sub', id: id + '-sub' }));
        }
        function section(title, ...body) { return el('section', {}, el('h2', {}, title), ...body); }
        function silenceButton(alert) {
          const matchers = ['alertname="' + alert.rule + '"'].concat(Object.entries(alert.labels).filter(([k]) => k !== 'alertname')
            .map(([k, v]) => k + '="' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"'));
          return el('button', { class: 'act', type: 'button', title: 'Silence this alert for 2 hours', onclick: () =>
            act('Silence ' + alert.rule, '/api/v1/silences', { matchers: matchers.join(','), duration: '2h', created_by: 'dashboard',
              comment: 'silenced from the dashboard' }) }, 'Silence 2h');
        }
        function taskLink(id) { return el('a', { href: '/tasks#task-' + id }, '#' + id); }
        function taskOfAlert(alert, top) {
          if (alert.labels.task) return alert.labels.task;
          if (alert.labels.gpu !== undefined && top) {
            const line = top.tasks.find((t) => t.gpus.includes(Number(alert.labels.gpu)));
            if (line) return line.id;
          }
          return null;
        }

        const pages = {};

        pages.overview = {
          build() {
            return [
              el('div', { class: 'cards' }, card('c-gpus', 'GPUs busy'), card('c-util', 'GPU usage'), card('c-active', 'Active tasks'),
                card('c-queued', 'Queued'), card('c-cph', 'Cost per hour'), card('c-today', 'Total cost today'), card('c-eta', 'Estimated completion'),
                card('c-host', 'Host CPU · memory')),
              section('Firing alerts', el('div', { id: 'alerts' })),
              el('div', { class: 'row' },
                section('GPU utilisation, last 15 minutes', el('div', { class: 'chart' }, el('canvas', { id: 'chart-gpu' }))),
                section('Host CPU and memory, last 15 minutes', el('div', { class: 'chart' }, el('canvas', { id: 'chart-host' })))),
              section('GPUs', el('div', { id: 'gpus' })),
              section('Active tasks', el('div', { id: 'tasks' })),
            ];
          },
          async update(top) {
            const [status, alerts] = await Promise.all([api('/api/v1/reports/status'), api('/api/v1/alerts')]);
            const usage = status.usage || {};
            setText('c-gpus', usage.busy_gpus + ' / ' + usage.gpus);
            setText('c-util', pct(usage.gpu_utilization));
            setText('c-util-sub', bytes(usage.gpu_memory_used) + ' of ' + bytes(usage.gpu_memory_total) + ' memory');
            setText('c-active', String(status.active_jobs));
            setText('c-active-sub', status.finished_today + ' finished today');
            setText('c-queued', String(status.queued_jobs));
            setText('c-cph', money(status.cost_per_hour, status.currency));
            setText('c-today', money(status.cost_today, status.currency));
            setText('c-eta', status.estimated_completion ? clock(status.estimated_completion) : 'nothing running');
            setText('c-eta-sub', status.estimated_completion ? 'in ' + duration(status.estimated_completion - Date.now()) : '');
            setText('c-host', pct(usage.cpu_utilization) + ' · ' + pct(isNum(usage.memory_used) && usage.memory_total ? usage.memory_used / usage.memory_total : null));
            setText('c-host-sub', top.cpus + ' CPUs, load ' + number(top.load1));
            const firing = alerts.alerts.filter((a) => a.state === 'firing');
            fill('alerts', table(['Severity', 'Alert', 'Summary', 'Labels', 'Since', 'Actions'], firing.map((a) => {
              const task = taskOfAlert(a, top);
              return [badge(a.labels.severity || 'none'), a.rule, a.annotations.summary || '', labelText(a.labels), ago(a.firedAt || a.activeAt),
                el('span', {}, a.silencedBy.length ? badge('silenced', 'info') : silenceButton(a), task ? el('a', { href: '/tasks#task-' + task }, 'Open task #' + task) : null)];
            })));
            fill('gpus', table(['GPU', 'Model', 'Utilisation', 'Memory', 'Temp', 'Power', 'Tasks'], top.gpus.map((g) => {
              const tasks = top.tasks.filter((t) => t.gpus.includes(g.index));
              return [String(g.index), g.model, bar(g.utilization, pct(g.utilization)),
                bar(g.memory_total ? g.memory_used / g.memory_total : null, bytes(g.memory_used) + ' / ' + bytes(g.memory_total)),
                isNum(g.temperature) ? g.temperature.toFixed(0) + ' °C' : '–', isNum(g.power) ? g.power.toFixed(0) + ' W' : '–',
                el('span', {}, tasks.map((t) => [taskLink(t.id), ' ' + t.name + ' ']))];
            }), [0]));
            fill('tasks', table(['Task', 'Name', 'Owner', 'State', 'GPUs', 'Running', 'Cost'], top.tasks.map((t) =>
              [taskLink(t.id), t.name, t.owner, badge(t.state), t.gpus.join(', ') || '–', duration(t.run_seconds * 1000), money(t.cost, top.currency)]), [5, 6]));
            await Promise.all([
              rangeChart('chart-gpu', { query: 'gpu_utilization_ratio' }, (l) => 'GPU ' + l.gpu, 100),
              this.hostChart(),
            ]);
          },
          async hostChart() {
            const range = window15m();
            const q = (params) => api('/api/v1/query_range?' + new URLSearchParams(Object.assign({}, range, params)));
            const [idle, total, available] = await Promise.all([
              q({ query: 'node_cpu_seconds_total{mode="idle"}', function: 'rate', window: '1m', aggregate: 'avg' }),
              q({ query: 'node_memory_MemTotal_bytes' }), q({ query: 'node_memory_MemAvailable_bytes' })]);
            const points = (reply) => new Map(((reply.result[0] || {}).samples || []).map((p) => [p[0], p[1]]));
            const cpu = points(idle), mem = points(total), free = points(available);
            const times = [...new Set([...cpu.keys(), ...mem.keys()])].sort((a, b) => a - b);
            chart('chart-host', 'line', {
              labels: times.map((t) => new Date(t * 1000).toTimeString().slice(0, 8)),
              datasets: [series(PALETTE[0], 'CPU %', times.map((t) => cpu.has(t) ? (1 - cpu.get(t)) * 100 : null)),
                series(PALETTE[2], 'Memory %', times.map((t) => mem.has(t) && free.has(t) ? (1 - free.get(t) / mem.get(t)) * 100 : null))],
            }, { scales: { y: { beginAtZero: true, max: 100 } } });
          },
        };

        const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
        function priorityControl(task) {
          const select = el('select', { title: 'Change the priority', onchange: (event) =>
            act('Priority of #' + task.id, '/api/v1/tasks/' + task.id + '/priority', { priority: event.target.value }) },
          el('option', { value: '', text: String(task.spec.priority) }), PRIORITIES.map((p) => el('option', { value: p }, p)));
          return select;
        }
        function controls(view) {
          const task = view.task, id = task.id, out = [];
          if (task.state === 'running') out.push(el('button', { class: 'act', type: 'button', onclick: () => act('Pause #' + id, '/api/v1/tasks/' + id + '/pause') }, 'Pause'));
          if (task.state === 'paused') out.push(el('button', { class: 'act', type: 'button', onclick: () => act('Resume #' + id, '/api/v1/tasks/' + id + '/resume') }, 'Resume'));
          if (['queued', 'running', 'paused', 'starting'].includes(task.state)) {
            out.push(el('button', { class: 'act danger', type: 'button', onclick: () => { if (confirm('Cancel task #' + id + '?')) act('Cancel #' + id, '/api/v1/tasks/' + id + '/cancel'); } }, 'Cancel'));
            out.push(priorityControl(task));
          }
          return el('span', {}, out);
        }
        pages.tasks = {
          build() {
            return [
              el('div', { id: 'detail' }),
              section('Queue', el('div', { id: 'queue-note', class: 'muted' }), el('div', { id: 'queue' })),
              section('Running', el('div', { id: 'running' })),
              section('History', el('div', { id: 'history' })),
            ];
          },
          async update(top) {
            const [queue, finished] = await Promise.all([api('/api/v1/queue'), api('/api/v1/tasks?state=succeeded,failed,cancelled,stopped,lost')]);
            const utilization = new Map(top.gpus.map((g) => [g.index, g.utilization]));
            setText('queue-note', (queue.drained ? 'Drained: no task starts. ' : '') + 'Strategy ' + queue.policy.strategy + ', target ' + queue.policy.target +
              '; today ' + money(queue.cost_today, queue.currency) + ', now ' + money(queue.cost_per_hour, queue.currency) + ' per hour.');
            fill('queue', table(['Task', 'Name', 'Owner', 'Priority', 'GPUs', 'Reason', 'Start (ETA)', 'End (ETA)', 'Actions'], queue.waiting.map((v) =>
              [taskLink(v.task.id), v.task.spec.name || v.task.spec.command.join(' '), v.task.spec.owner, String(v.task.spec.priority), String(v.task.spec.gpus),
                el('span', { title: v.note || '' }, v.reason || ''), clock(v.estimated_start), clock(v.estimated_end), controls(v)])));
            fill('running', table(['Task', 'Name', 'Owner', 'State', 'GPUs', 'Utilisation', 'Running', 'Cost', 'Expected end', 'Actions'], queue.active.map((v) => {
              const gpus = v.task.gpu_indices || [];
              const values = gpus.map((g) => utilization.get(g)).filter(isNum);
              const mean = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
              return [taskLink(v.task.id), v.task.spec.name || v.task.spec.command.join(' '), v.task.spec.owner, badge(v.task.state), gpus.join(', ') || '–',
                gpus.length ? bar(mean, pct(mean)) : '–', duration(v.run_time_ms), money(v.task.cost, queue.currency), clock(v.estimated_end), controls(v)];
            })));
            fill('history', table(['Task', 'Name', 'Owner', 'State', 'Exit', 'Ended', 'Cost'], finished.tasks.slice(0, 50).map((v) =>
              [taskLink(v.task.id), v.task.spec.name || v.task.spec.command.join(' '), v.task.spec.owner, badge(v.task.state),
                v.task.exit_code === undefined || v.task.exit_code === null ? '–' : String(v.task.exit_code), clock(v.task.ended), money(v.task.cost, queue.currency)]), [6]));
            await this.detail();
          },
          async detail() {
            const match = /^#task-(\d+)$/.exec(location.hash);
            if (!match) { fill('detail'); return; }
            const id = match[1];
            const [view, report, log] = await Promise.all([api('/api/v1/tasks/' + id),
              api('/api/v1/reports/tasks/' + id).catch(() => null), fetch('/api/v1/tasks/' + id + '/logs', { headers: V.token ? { Authorization: 'Bearer ' + V.token } : {} }).then((r) => r.ok ? r.text() : '')]);
            const t = view.task;
            fill('detail', section('Task #' + id + ' · ' + (t.spec.name || t.spec.command.join(' ')),
              el('p', {}, badge(t.state), ' owner ', el('b', {}, t.spec.owner), ', GPUs ', (t.gpu_indices || []).join(', ') || 'none',
                ', submitted ', clock(t.submitted), t.started ? ', started ' + clock(t.started) : '', t.ended ? ', ended ' + clock(t.ended) : '',
                ', cost ', money(t.cost), ' ', controls(view)),
              report ? el('p', {}, report.indicators.map((i) => [i.name + ': ', badge(i.level, i.level === 'High' || i.level === 'Excellent' ? 'ok' : i.level === 'Low' || i.level === 'Poor' ? 'warning' : 'info'), ' '])) : null,
              el('details', { open: true }, el('summary', {}, 'Output (stdout)'), el('pre', { class: 'log' }, log.slice(-8000) || '(nothing yet)'))));
          },
        };
        window.addEventListener('hashchange', () => refresh());

        pages.alerts = {
          build() {
            const form = el('form', { class: 'inline', onsubmit: (event) => {
              event.preventDefault();
              act('New silence', '/api/v1/silences', { matchers: $('s-matchers').value, duration: $('s-duration').value, comment: $('s-comment').value, created_by: 'dashboard' });
            } }, el('input', { id: 's-matchers', placeholder: 'alertname="GpuTooHot", gpu="0"', size: 36, required: true }),
            el('select', { id: 's-duration' }, ['1h', '2h', '8h', '1d', '7d'].map((d) => el('option', { value: d }, d))),
            el('input', { id: 's-comment', placeholder: 'why', size: 20 }), el('button', { class: 'act', type: 'submit' }, 'Silence'));
            return [section('Firing', el('div', { id: 'firing' })), section('Pending', el('div', { id: 'pending' })),
              section('Resolved recently', el('div', { id: 'resolved' })), section('Silences', form, el('div', { id: 'silences' })),
              section('History', el('div', { id: 'history' }))];
          },
          async update() {
            const [alerts, silences, history] = await Promise.all([api('/api/v1/alerts'), api('/api/v1/silences'), api('/api/v1/alerts/history?limit=25')]);
            const rows = (state) => alerts.alerts.filter((a) => a.state === state).map((a) => [badge(a.labels.severity || 'none'), a.rule,
              a.annotations.summary || '', labelText(a.labels), number(a.value), state === 'inactive' ? ago(a.resolvedAt) : ago(a.firedAt || a.activeAt),
              a.silencedBy.length ? badge('silenced', 'info') : a.inhibited ? badge('inhibited', 'info') : state === 'inactive' ? '' : silenceButton(a)]);
            const head = ['Severity', 'Alert', 'Summary', 'Labels', 'Value', 'Since', ''];
            fill('firing', table(head, rows('firing'), [4]));
            fill('pending', table(head, rows('pending'), [4]));
            fill('resolved', table(['Severity', 'Alert', 'Summary', 'Labels', 'Value', 'Resolved', ''], rows('inactive'), [4]));
            fill('silences', table(['ID', 'Matchers', 'State', 'Ends', 'By', 'Comment', ''], silences.silences.map((s) => [s.id.slice(0, 8), s.matchers, badge(s.state),
              clock(s.ends_at), s.created_by, s.comment, el('button', { class: 'act danger', type: 'button', onclick: () => act('Expire silence', '/api/v1/silences/' + s.id, undefined, 'DELETE') }, 'Expire')])));
            fill('history', table(['Time', 'Alert', 'Change', 'Value', 'Labels'], history.history.map((h) => {
              let labels = {}; try { labels = JSON.parse(h.labels); } catch (e) { /* shown empty */ }
              return [clock(h.time), h.rule, h.fromState + ' → ' + h.toState, number(h.value), labelText(labels)];
            }), [3]));
          },
        };

        pages.recommendations = {
          build() {
            return [el('div', { class: 'cards' }, card('c-count', 'Recommendations'), card('c-saving', 'Possible saving per month'), card('c-hours', 'GPU-hours per month')),
              section('Recommendations', el('div', { id: 'list' })), section('Expired in the last 24 hours', el('div', { id: 'expired' }))];
          },
          async update() {
            const reply = await api('/api/v1/recommendations?expired=24h');
            const list = reply.recommendations;
            setText('c-count', String(list.length));
            const currency = (list.find((r) => r.currency) || {}).currency;
            setText('c-saving', money(list.reduce((sum, r) => sum + (r.saving_per_month || 0), 0), currency));
            setText('c-hours', number(list.reduce((sum, r) => sum + (r.gpu_hours_per_month || 0), 0)));
            const row = (r) => [badge(r.severity), el('div', {}, el('b', {}, r.title), el('details', {}, el('summary', {}, 'advice'), el('p', {}, r.advice))),
              r.subject + (r.subject_id ? ' ' + r.subject_id : ''), money(r.saving_per_month, r.currency), number(r.gpu_hours_per_month), r.rule, ago(r.first_seen)];
            fill('list', table(['Severity', 'Recommendation', 'About', 'Saving / month', 'GPU-h / month', 'Rule', 'First seen'], list.map(row), [3, 4]));
            fill('expired', table(['Severity', 'Recommendation', 'About', 'Saving / month', 'GPU-h / month', 'Rule', 'First seen'], (reply.expired || []).map(row), [3, 4]));
          },
        };

        pages.benchmarks = {
          build() {
            return [el('div', { id: 'facts', class: 'muted' }), el('div', { id: 'cards', class: 'cards' }),
              el('div', { class: 'row' },
                section('Share of the hardware\'s peak: latest, best, the reference machine and the optimum', el('div', { class: 'chart tall' }, el('canvas', { id: 'chart-radar' }))),
                section('Latency distribution', el('select', { id: 'latency-pick', onchange: () => refresh() }), el('div', { class: 'chart small' }, el('canvas', { id: 'chart-histogram' })))),
              section('Benchmark recommendations', el('div', { id: 'recs' })), section('Runs', el('div', { id: 'runs' }))];
          },
          async update() {
            const [data, recs] = await Promise.all([api('/api/v1/benchmarks'), api('/api/v1/recommendations')]);
            const runs = data.runs || [];
            const f = data.facts || {};
            setText('facts', [f.hostname, f.cpu_model || f.cpuModel, f.cores ? f.cores + ' cores' : null].filter(Boolean).join(' · '));
            const latest = runs[0];
            if (!latest) { fill('cards', el('p', { class: 'muted' }, 'No benchmark has run on this host yet: run `vigil bench --quick`.')); return; }
            const results = latest.results.filter((r) => !r.skipped);
            const history = (name) => runs.slice().reverse().map((run) => (run.results.find((r) => r.name === name && !r.skipped) || {}).value).filter(isNum);
            fill('cards', results.map((r) => {
              const values = history(r.name);
              const before = values.slice(0, -1);
              const median = before.length ? before.slice().sort((a, b) => a - b)[Math.floor(before.length / 2)] : null;
              let trend = 'first run';
              let cls = '';
              if (isNum(median) && median > 0) {
                const change = (r.value - median) / median;
                const better = r.higherIsBetter ? change >= 0 : change <= 0;
                trend = (change >= 0 ? '▲ ' : '▼ ') + Math.abs(change * 100).toFixed(1) + ' % vs median of ' + before.length;
                cls = Math.abs(change) < 0.02 ? '' : better ? 'trend-up' : 'trend-down';
              }
              const canvas = el('canvas', { width: 140, height: 34 });
              const node = el('div', { class: 'card', 'data-bench': r.name }, el('div', { class: 'label' }, r.name),
                el('div', { class: 'value' }, number(r.score, 0)), el('div', { class: 'sub' }, number(r.value) + ' ' + r.unit + (isNum(r.efficiency) ? ' · ' + pct(r.efficiency) + ' of peak' : '')),
                el('div', { class: 'sub ' + cls }, trend), canvas);
              requestAnimationFrame(() => sparkline(canvas, values));
              return node;
            }));
            // Each axis is the share of the hardware's peak (1 = the optimum), so unlike figures share one scale.
            const scored = results.filter((r) => isNum(r.efficiency) && r.efficiency > 0 && isNum(r.score) && r.score > 0);
            const best = (r) => {
              const values = history(r.name);
              const top = r.higherIsBetter ? Math.max(...values) : Math.min(...values);
              return r.value > 0 && top > 0 ? r.efficiency * (r.higherIsBetter ? top / r.value : r.value / top) : null;
            };
            chart('chart-radar', 'radar', { labels: scored.map((r) => r.name), datasets: [
              series(PALETTE[0], 'This host, latest', scored.map((r) => r.efficiency), { pointRadius: 2 }),
              series(PALETTE[2], 'This host, best', scored.map(best), { pointRadius: 2 }),
              series(PALETTE[8], 'Reference machine (score 1000)', scored.map((r) => r.efficiency * 1000 / r.score), { pointRadius: 2, borderDash: [4, 4] }),
              series(PALETTE[1], 'Optimum (the hardware\'s peak)', scored.map(() => 1), { pointRadius: 0, backgroundColor: 'transparent' }),
            ] }, { scales: { r: { beginAtZero: true, suggestedMax: 1 } } });
            const latencies = results.filter((r) => r.histogram && r.histogram.length);
            const pick = $('latency-pick');
            if (pick.options.length !== latencies.length) {
              const chosen = pick.value;
              pick.replaceChildren(...latencies.map((r) => el('option', { value: r.name, selected: r.name === chosen }, r.name + ' (' + r.unit + ')')));
            }
            const shown = latencies.find((r) => r.name === pick.value) || latencies[0];
            if (shown) {
              chart('chart-histogram', 'bar', { labels: shown.histogram.map((b) => number((b[0] + b[1]) / 2)), datasets: [
                series(PALETTE[0], shown.name + ' (' + shown.unit + '), p50 ' + number(shown.p50) + ', p99 ' + number(shown.p99), shown.histogram.map((b) => b[2]), { backgroundColor: PALETTE[0] + 'aa' })] },
              { scales: { y: { beginAtZero: true, title: { display: true, text: 'samples' } } } });
            }
            const benchRecs = recs.recommendations.filter((r) => r.subject === 'benchmark' || /^Benchmark/.test(r.rule));
            fill('recs', table(['Severity', 'Recommendation', 'Advice'], benchRecs.map((r) => [badge(r.severity), r.title, r.advice])));
            fill('runs', table(['Time', 'Run', 'Kind', 'Results'], runs.slice(0, 20).map((run) => [clock(run.time), run.id.slice(0, 8), run.quick ? 'quick' : 'full',
              String(run.results.filter((r) => !r.skipped).length)]), [3]));
          },
        };

        pages.rules = {
          build() { return [section('Rules', el('div', { id: 'rules' })), section('Rule files', el('div', { id: 'files' }))]; },
          async update() {
            const reply = await api('/api/v1/rules');
            fill('rules', table(['Kind', 'Rule', 'Health', 'Last error', 'Evaluation', 'Every', 'Last run', 'Firing', 'Pending', 'File'], reply.rules.map((r) =>
              [r.kind, r.name, badge(r.health), r.lastError || '', (r.evaluationSeconds * 1000).toFixed(2) + ' ms', duration(r.intervalSeconds * 1000),
                ago(r.lastEvaluation), String(r.firing), String(r.pending), r.file]), [4, 7, 8]));
            fill('files', table(['File', 'Loaded', 'Error', 'Rules'], reply.files.map((f) => [f.path, f.loaded ? badge('ok') : badge('error'), f.error || '', f.rules.join(', ')])));
          },
        };

        // ---- the loop ------------------------------------------------------------------------------------------
        /// The status badge: Active (tasks running), Queued, or Idle, and the firing alerts, coloured by the worst.
        function updateBadge(top) {
          setText('host', top.host);
          const state = top.tasks.some((t) => t.state === 'running') ? 'Active' : top.queued ? 'Queued' : 'Idle';
          const worst = top.alerts.some((a) => a.severity === 'critical') ? 'critical' : top.alerts.length ? 'warning' : 'ok';
          $('badge').textContent = state + (top.alerts.length ? ' · ' + top.alerts.length + ' alert' + (top.alerts.length > 1 ? 's' : '') : '');
          $('badge').className = 'badge ' + worst;
          $('badge').title = top.alerts.map((a) => a.name + ': ' + a.summary).join('\n') || 'no alert firing';
        }
        async function refresh() {
          const page = pages[V.page];
          if (!page || V.busy) return;
          V.busy = true;
          try {
            if (!V.built) { $('main').replaceChildren(...page.build()); V.built = true; }
            // One snapshot of the host per refresh, for the badge and for the pages that show GPUs and tasks.
            const top = await api('/api/v1/top');
            updateBadge(top);
            await page.update(top);
            notice('offline', null);
            setText('updated', 'Updated ' + new Date().toTimeString().slice(0, 8) + ', every ' + POLL_MS / 1000 + ' s');
            if (new URLSearchParams(location.search).has('canvas')) {
              // For tests: how much each chart's image holds, so a blank canvas shows.
              for (const [id, drawn] of Object.entries(V.charts)) {
                const points = drawn.data.datasets.reduce((sum, set) => sum + set.data.filter((v) => v !== null && v !== undefined).length, 0);
                document.body.setAttribute('data-drawn-' + id, drawn.canvas.toDataURL().length + ':' + points);
              }
            }
            document.body.dataset.ready = '1';
          } catch (error) {
            notice('offline', 'Cannot read the daemon\'s API: ' + error.message + (error.status === 401 ? ' (reads from beyond this host need the token: press Token)' : ''), 'error');
          } finally {
            V.busy = false;
          }
        }
        async function start() {
          loadToken();
          chartsAvailable();
          await refresh();
          V.timer = setInterval(refresh, POLL_MS);
        }
        start();
        """#
}
