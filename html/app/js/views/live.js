// Live calls: the registry's calls of this business (GET /api/live), asked
// for every 500 ms while the view is open, rows updated in place so the
// table does not flicker and a row keeps its place under the reader's eye.

import { get } from '../api.js';
import { h, replace, phone, clock, count, ltr } from '../dom.js';
import { label, tone } from '../labels.js';

const EVERY_MS = 500;
const COLUMNS = ['התחילה', 'מתקשר', 'אל', 'מצב', 'סטטוס ב־Twilio', 'משך', 'שמע', 'פריימים',
                 'העברה להקלטה'];

export default function live(el, ctx) {
    const body = h('tbody');
    const empty = h('p', { class: 'empty', hidden: true }, 'אין כרגע שיחות חיות.');
    const total = h('span', { class: 'total' });
    const status = h('div', { class: 'poll', 'aria-live': 'off' });
    const problem = h('div', { class: 'said' });
    const rows = new Map();

    el.append(
        h('header', { class: 'view-head' },
          h('h1', {}, 'שיחות חיות'), total, status),
        problem,
        h('div', { class: 'table-wrap' },
          h('table', { class: 'live' },
            h('thead', {}, h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)))),
            body)),
        empty);

    let timer = null;
    let failures = 0;

    async function poll() {
        const started = performance.now();
        try {
            const data = await get('live', { signal: ctx.signal });
            failures = 0;
            problem.replaceChildren();
            show(data);
            replace(status, h('span', { class: 'pulse' }), 'מתעדכן · ',
                    clock(new Date().toISOString()));
        } catch (e) {
            if (ctx.signal.aborted) return;
            if (e.status === 401) return ctx.fail(e);
            failures++;
            status.replaceChildren(h('span', { class: 'pulse off' }), 'לא מתעדכן');
            ctx.fail(e, problem);
        }
        if (ctx.signal.aborted) return;
        // a server that keeps failing is asked less often, up to every 5 s
        const wait = failures ? Math.min(5000, EVERY_MS * 2 ** failures) : EVERY_MS;
        timer = setTimeout(poll, Math.max(0, wait - (performance.now() - started)));
    }

    function show(data) {
        const calls = [...(data.results || [])].sort(
            (a, b) => String(b.started_at).localeCompare(String(a.started_at)));
        const n = data.total ?? calls.length;
        replace(total, n === 1 ? 'שיחה אחת' : [count(n), ' שיחות']);
        const seen = new Set();
        for (const c of calls) {
            seen.add(c.call_sid);
            let row = rows.get(c.call_sid);
            if (!row) {
                row = newRow(c);
                rows.set(c.call_sid, row);
            }
            update(row, c);
            body.appendChild(row.tr);    // moves it into order; no-op when in place
        }
        for (const [sid, row] of rows) {
            if (!seen.has(sid)) {
                row.tr.remove();
                rows.delete(sid);
            }
        }
        empty.hidden = calls.length > 0;
        if (data.truncated) {
            problem.replaceChildren(h('p', { class: 'notice info' },
                'ברשומה יש יותר שיחות ממה שאפשר להציג: מוצגות החדשות ביותר.'));
        }
    }

    poll();
    return () => clearTimeout(timer);
}

function newRow(c) {
    const cells = {};
    const td = (key, ...content) => (cells[key] = h('td', { class: key }, ...content));
    const link = h('a', { href: `/app/calls/${encodeURIComponent(c.call_sid)}` },
                   clock(c.started_at));
    const tr = h('tr', { 'data-sid': c.call_sid },
                 td('started', link), td('from', phone(c.from)), td('to', phone(c.to)),
                 td('state'), td('call_status'), td('age'), td('media'), td('frames'),
                 td('redirect'));
    return { tr, cells, last: {} };
}

// Each cell is rewritten only when its value changed.
function update(row, c) {
    const set = (key, value, make) => {
        const v = JSON.stringify(value);
        if (row.last[key] === v) return;
        row.last[key] = v;
        replace(row.cells[key], make());
    };
    set('state', c.state, () => dot(c.state, label('state', c.state)));
    set('call_status', c.call_status, () => label('callStatus', c.call_status));
    set('age', Math.floor((c.age_ms ?? 0) / 1000), () => seconds(c.age_ms));
    set('media', [c.stream_live, bucket(c.since_media_ms)], () =>
        c.stream_live
            ? dot('streaming', c.since_media_ms === null || c.since_media_ms === undefined
                ? 'זרם פתוח' : ['שמע לפני ', ago(c.since_media_ms)])
            : h('span', { class: 'muted' }, 'אין זרם'));
    set('frames', c.frames, () => count(c.frames));
    set('redirect', c.redirect, () => c.redirect
        ? dot(c.redirect.outcome, `${label('reason', c.redirect.reason)} · `
                                  + label('outcome', c.redirect.outcome))
        : h('span', { class: 'muted' }, '—'));
    // a call that ended stays a few minutes in the registry: shown, faded
    row.tr.className = `tone-${tone(c.state)}${c.ended ? ' ended' : ''}`;
}

function dot(code, ...text) {
    return h('span', { class: `dot ${tone(code)}` }, ...text);
}

// mm:ss of the call so far
function seconds(ms) {
    const s = Math.floor((ms ?? 0) / 1000);
    return ltr(`${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`, 'num');
}

// time since the last audio, at a resolution a person reads: tenths under
// 10 s, then seconds
function bucket(ms) {
    if (ms === null || ms === undefined) return null;
    return ms < 10000 ? Math.round(ms / 100) : Math.round(ms / 1000) * 10;
}

// a number and its unit, in Hebrew order (not isolated LTR: the unit
// belongs to the sentence)
function ago(ms) {
    const n = ms < 10000 ? (ms / 1000).toFixed(1) : String(Math.round(ms / 1000));
    return h('span', { class: 'num' }, `${n} ש׳`);
}
