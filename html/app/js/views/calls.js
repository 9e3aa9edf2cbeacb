// Calls from the CRM, newest first, filtered by Twilio's status, a page at
// a time; each opens its timeline, recording and transcript.

import { get, query } from '../api.js';
import { h, replace, phone, name, when, duration, count, notice } from '../dom.js';
import { label, tone } from '../labels.js';
import { pager, pageParam } from '../pager.js';

const STATUSES = ['ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer',
                  'canceled'];

export default function calls(el, ctx) {
    const page = pageParam(ctx.params);
    const status = STATUSES.includes(ctx.params.get('status')) ? ctx.params.get('status') : '';
    const href = (p, s = status) => `/app/calls${query({ status: s, page: p > 1 ? p : '' })}`;

    const select = h('select', { id: 'status', onchange: () => ctx.go(href(1, select.value)) },
                     h('option', { value: '' }, 'כל הסטטוסים'),
                     STATUSES.map((s) => h('option', { value: s, selected: s === status },
                                           label('callStatus', s))));
    const list = h('div', { class: 'list' }, h('p', { class: 'muted' }, 'טוען…'));
    el.append(h('header', { class: 'view-head' }, h('h1', {}, 'שיחות'),
                h('div', { class: 'filters' }, h('label', { for: 'status' }, 'סטטוס'), select)),
              list);

    get(`calls${query({ status, page, limit: 25 })}`, { signal: ctx.signal })
        .then((data) => {
            if (!data.results.length) {
                return replace(list, notice('info', 'אין שיחות להצגה.'),
                               data.total ? pager(data, href) : null);
            }
            replace(list,
                h('div', { class: 'table-wrap' }, h('table', { class: 'calls' },
                    h('thead', {}, h('tr', {}, ['מתי', 'מתקשר', 'לקוח', 'סטטוס', 'משך',
                                                'פריימים', 'העברה להקלטה']
                        .map((c) => h('th', { scope: 'col' }, c)))),
                    h('tbody', {}, data.results.map(row)))),
                pager(data, href));
        })
        .catch((e) => ctx.fail(e, list));
}

function row(c) {
    return h('tr', { 'data-sid': c.call_sid },
        h('td', {}, h('a', { href: `/app/calls/${encodeURIComponent(c.call_sid)}` },
                      when(c.created_at))),
        h('td', {}, phone(c.from)),
        h('td', { class: 'name' }, name(c.customer?.name)),
        h('td', {}, h('span', { class: `dot ${tone(c.status)}` }, label('callStatus', c.status))),
        h('td', {}, duration(c.duration_s)),
        h('td', {}, count(c.frames)),
        h('td', {}, c.redirect_reason
            ? `${label('reason', c.redirect_reason)} · ${label('outcome', c.redirect_outcome)}`
            : c.fallback_served ? 'הקלטה חלופית' : h('span', { class: 'muted' }, '—')));
}
