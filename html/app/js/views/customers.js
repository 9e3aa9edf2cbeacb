// Customers, newest first, searched by a part of the name or the number
// (q), a page at a time.  Typing searches as you go; the address keeps q
// and the page, so a search can be shared or reloaded.

import { get, query } from '../api.js';
import { h, replace, phone, name, when, notice } from '../dom.js';
import { pager, pageParam } from '../pager.js';

const LIMIT = 25;

export default function customers(el, ctx) {
    let q = (ctx.params.get('q') || '').slice(0, 100);
    let page = pageParam(ctx.params);
    const href = (p) => `/app/customers${query({ q, page: p > 1 ? p : '' })}`;

    const input = h('input', { type: 'search', id: 'q', name: 'q', value: q, maxlength: 100,
                               autocomplete: 'off', placeholder: 'שם או חלק ממספר הטלפון' });
    const list = h('div', { class: 'list' }, h('p', { class: 'muted' }, 'טוען…'));
    const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => {
        e.preventDefault();
        search();
    } }, h('label', { for: 'q' }, 'חיפוש'), input);
    el.append(h('header', { class: 'view-head' }, h('h1', {}, 'לקוחות'), form), list);

    let typing = null;
    let inflight = null;
    input.addEventListener('input', () => {
        clearTimeout(typing);
        typing = setTimeout(search, 300);
    });

    function search() {
        clearTimeout(typing);
        if (input.value.trim() === q && page === 1) return;
        q = input.value.trim();
        page = 1;
        history.replaceState(null, '', href(1));
        load();
    }

    async function load() {
        inflight?.abort();
        const mine = inflight = new AbortController();
        ctx.signal.addEventListener('abort', () => mine.abort(), { once: true });
        try {
            const data = await get(`crm/customers${query({ q, page, limit: LIMIT })}`,
                                   { signal: mine.signal });
            if (mine !== inflight) return;
            if (!data.results.length) {
                return replace(list, notice('info', q ? `לא נמצאו לקוחות עבור „${q}”.`
                                                      : 'אין עדיין לקוחות.'),
                               data.total ? pager(data, href) : null);
            }
            replace(list,
                h('div', { class: 'table-wrap' }, h('table', { class: 'customers' },
                    h('thead', {}, h('tr', {}, ['שם', 'טלפון', 'נוסף', 'עודכן']
                        .map((c) => h('th', { scope: 'col' }, c)))),
                    h('tbody', {}, data.results.map((c) => h('tr', { 'data-customer': c.id },
                        h('td', { class: 'name' }, name(c.name)),
                        h('td', {}, phone(c.phone)),
                        h('td', {}, when(c.created_at)),
                        h('td', {}, when(c.updated_at))))))),
                pager(data, href));
        } catch (e) {
            if (e.name !== 'AbortError') ctx.fail(e, list);
        }
    }

    load();
    return () => {
        clearTimeout(typing);
        inflight?.abort();
    };
}
