// WhatsApp: the threads (newest activity first) beside the open thread's
// messages, oldest at the top like any chat, and a box that sends to the
// thread's customer through POST /api/whatsapp/send.  Both refresh every
// few seconds, so a reply or a delivery status shows up by itself.

import { get, post, query } from '../api.js';
import { h, replace, phone, name, when, clock, notice } from '../dom.js';
import { label, tone } from '../labels.js';
import { pager, pageParam } from '../pager.js';

const REFRESH_MS = 4000;
const PAGE = 50;

export default function threads(el, ctx, threadId) {
    const listPage = pageParam(ctx.params);
    const listHref = (p) => `/app/threads${query({ page: p > 1 ? p : '' })}`;
    const list = h('div', { class: 'thread-list' }, h('p', { class: 'muted' }, 'טוען…'));
    const pane = h('section', { class: 'thread' });
    el.append(h('header', { class: 'view-head' }, h('h1', {}, 'וואטסאפ')),
              h('div', { class: threadId ? 'chat open' : 'chat' }, list, pane));

    let threadsData = null;
    let timer = null;
    let thread = null;

    async function loadList() {
        threadsData = await get(`threads${query({ page: listPage, limit: 25 })}`,
                                { signal: ctx.signal });
        showList();
    }

    function showList() {
        if (!threadsData.results.length) {
            return replace(list, notice('info', 'אין עדיין שיחות וואטסאפ.'));
        }
        replace(list,
            h('ul', {}, threadsData.results.map((t) => h('li', {},
                h('a', { href: `/app/threads/${t.id}${query({ page: listPage > 1 ? listPage : '' })}`,
                         'aria-current': String(t.id) === threadId ? 'page' : null,
                         'data-thread': t.id },
                  h('span', { class: 'who' },
                    name(t.customer?.name), ' ', phone(t.customer?.phone)),
                  h('time', { class: 'at', datetime: t.last_message_at }, clock(t.last_message_at)),
                  h('span', { class: 'preview', dir: 'auto' },
                    t.last_message?.direction === 'outbound' ? 'אתם: ' : '',
                    t.last_message?.body ?? ''))))),
            pager(threadsData, listHref));
    }

    // the thread's customer: on this page of the list, or found further on
    async function findThread(id) {
        let t = threadsData?.results.find((x) => String(x.id) === id);
        for (let p = 1; !t && p <= 20; p++) {
            const d = await get(`threads${query({ page: p, limit: 100 })}`, { signal: ctx.signal });
            t = d.results.find((x) => String(x.id) === id);
            if (p >= d.pages) break;
        }
        return t;
    }

    async function openThread() {
        replace(pane, h('p', { class: 'muted' }, 'טוען…'));
        const t = await findThread(threadId);
        if (!t) return replace(pane, notice('error', 'השיחה לא נמצאה.'));
        thread = new Thread(pane, t, ctx);
        await thread.load(1);
    }

    async function refresh() {
        try {
            await loadList();
            if (thread) await thread.load(1);
        } catch (e) {
            if (e.status === 401) return ctx.fail(e);
            /* shown on the next successful refresh; the page stays readable */
        }
        if (!ctx.signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
    }

    (async () => {
        try {
            await loadList();
            if (threadId) await openThread();
            else replace(pane, h('p', { class: 'muted pick' }, 'בחרו שיחה מהרשימה.'));
            timer = setTimeout(refresh, REFRESH_MS);
        } catch (e) {
            ctx.fail(e, threadId && threadsData ? pane : list);
        }
    })();
    return () => clearTimeout(timer);
}

class Thread {
    constructor(pane, t, ctx) {
        this.t = t;
        this.ctx = ctx;
        this.messages = new Map();
        this.pages = 1;
        this.loaded = 0;
        this.older = h('button', { type: 'button', class: 'link', hidden: true,
                                   onclick: () => this.load(this.loaded + 1) },
                       'הודעות קודמות');
        this.box = h('ol', { class: 'messages', 'aria-live': 'polite' });
        this.scroller = h('div', { class: 'scroller' }, this.older, this.box);
        this.said = h('div', { class: 'said' });
        replace(pane,
            h('header', { class: 'thread-head' },
              h('h2', {}, name(t.customer?.name)),
              phone(t.customer?.phone)),
            this.scroller,
            this.form(),
            this.said);
    }

    async load(page) {
        const d = await get(`threads/${this.t.id}/messages${query({ page, limit: PAGE })}`,
                            { signal: this.ctx.signal });
        this.pages = d.pages;
        this.loaded = Math.max(this.loaded, page);
        let changed = false;
        for (const m of d.results) {
            const key = JSON.stringify([m.status, m.updated_at, m.error_code]);
            if (this.messages.get(m.id)?.key !== key) {
                this.messages.set(m.id, { m, key });
                changed = true;
            }
        }
        this.older.hidden = this.loaded >= this.pages;
        if (changed || !this.box.childElementCount) this.render(page === 1);
    }

    render(toBottom) {
        const s = this.scroller;
        const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
        const fromBottom = s.scrollHeight - s.scrollTop;
        const all = [...this.messages.values()].map((x) => x.m).sort(
            (a, b) => String(a.created_at).localeCompare(String(b.created_at)) || a.id - b.id);
        replace(this.box, all.length ? all.map(message)
                                     : h('li', { class: 'muted' }, 'אין הודעות בשיחה זו.'));
        // stay where the reader was: at the newest, or on what they read
        s.scrollTop = toBottom && atBottom ? s.scrollHeight : s.scrollHeight - fromBottom;
    }

    form() {
        const text = h('textarea', { name: 'text', rows: 2, dir: 'auto', maxlength: 4096,
                                     required: true, 'aria-label': 'הודעה',
                                     placeholder: 'כתבו הודעה…' });
        const button = h('button', { type: 'submit', class: 'primary' }, 'שליחה');
        const form = h('form', { class: 'send', onsubmit: async (e) => {
            e.preventDefault();
            const body = text.value.trim();
            if (!body || button.disabled) return;
            button.disabled = true;
            this.said.replaceChildren(notice('info', 'שולח…'));
            try {
                await post('whatsapp/send', { to: this.t.customer.phone, text: body },
                           { signal: this.ctx.signal });
                text.value = '';
                this.said.replaceChildren();
            } catch (err) {
                if (err.name === 'AbortError') return;
                if (err.status === 401) return this.ctx.fail(err);
                this.said.replaceChildren(notice('error', sendError(err)));
            } finally {
                button.disabled = false;
            }
            // the message's row, sent or failed, as the CRM has it now
            this.load(1).catch(() => {});
        } }, text, button);
        // Enter sends, Shift+Enter is a new line, as in WhatsApp itself
        text.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                form.requestSubmit();
            }
        });
        return form;
    }
}

function sendError(err) {
    if (err.status === 403) {
        return 'אין לכם הרשאה לשלוח הודעות: החשבון שלכם לצפייה בלבד.';
    }
    if (err.status === 502) return `ההודעה לא נשלחה: ${err.message}`;
    if (err.status === 503) return `אין כרגע דרך לשלוח הודעות: ${err.message}`;
    if (err.status === 0) return 'אין חיבור לשרת; ההודעה לא נשלחה.';
    return `ההודעה לא נשלחה (${err.status}): ${err.message}`;
}

function message(m) {
    const out = m.direction === 'outbound';
    return h('li', { class: `msg ${out ? 'out' : 'in'}`, 'data-message': m.id },
        m.text ? h('p', { class: 'text', dir: 'auto' }, m.text) : null,
        (m.media || []).map(media),
        h('p', { class: 'meta' },
          when(m.created_at),
          out ? h('span', { class: `dot ${tone(m.status)}` }, label('message', m.status)) : null,
          out && m.provider ? h('span', { class: 'muted' }, m.provider) : null),
        m.error_message || m.error_code
            ? h('p', { class: 'error small' }, [m.error_code, m.error_message]
                .filter(Boolean).join(': '))
            : null);
}

// a link only to http(s): a URL from a message must never run script
function media(x) {
    let url = null;
    try {
        const u = new URL(x.url);
        if (u.protocol === 'https:' || u.protocol === 'http:') url = u.href;
    } catch { /* shown as text below */ }
    const caption = `קובץ מצורף (${x.content_type || 'לא ידוע'})`;
    return h('p', { class: 'media' }, url
        ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, caption)
        : h('span', { class: 'muted' }, caption));
}
