// One call: what the CRM knows of it, its timeline in order, and each
// recording with a player and its transcript.

import { get, audioUrl } from '../api.js';
import { h, replace, phone, name, sid, when, clock, duration, count, notice } from '../dom.js';
import { label, tone } from '../labels.js';

export default function call(el, ctx, callSid) {
    const body = h('div', {}, h('p', { class: 'muted' }, 'טוען…'));
    const blobs = [];
    el.append(h('p', { class: 'back' }, h('a', { href: '/app/calls' }, '→ לכל השיחות')), body);

    get(`calls/${encodeURIComponent(callSid)}`, { signal: ctx.signal })
        .then((c) => replace(body,
            h('header', { class: 'view-head' },
              h('h1', {}, 'שיחה ', sid(c.call_sid)),
              h('span', { class: `dot ${tone(c.status)}` }, label('callStatus', c.status))),
            facts(c),
            h('div', { class: 'columns' },
              h('section', { class: 'card', 'aria-labelledby': 'rec-h' },
                h('h2', { id: 'rec-h' }, 'הקלטות ותמלול'),
                c.recordings?.length
                    ? c.recordings.map((r) => recording(c.call_sid, r, ctx, blobs))
                    : h('p', { class: 'muted' }, 'לשיחה זו אין הקלטות.')),
              h('section', { class: 'card', 'aria-labelledby': 'tl-h' },
                h('h2', { id: 'tl-h' }, 'ציר זמן'),
                timeline(c.timeline || [])))))
        .catch((e) => {
            if (e.status === 404) {
                replace(body, notice('error', 'השיחה לא נמצאה (או שאינה של העסק הזה).'));
            } else {
                ctx.fail(e, body);
            }
        });

    return () => blobs.forEach((u) => URL.revokeObjectURL(u));
}

function facts(c) {
    const item = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
    return h('dl', { class: 'facts card' },
        item('מתקשר', phone(c.from)),
        item('אל', phone(c.to)),
        item('לקוח', c.customer
            ? [name(c.customer.name), ' ', phone(c.customer.phone)]
            : '—'),
        item('התחילה', when(c.created_at)),
        item('נענתה', when(c.answered_at)),
        item('הסתיימה', when(c.ended_at)),
        item('משך', duration(c.duration_s)),
        item('פריימים של שמע', count(c.frames)),
        item('מזהה הזרם', c.stream_sid ? sid(c.stream_sid) : '—'),
        item('העברה להקלטה', c.redirect_reason
            ? `${label('reason', c.redirect_reason)} · ${label('outcome', c.redirect_outcome)}`
            : '—'),
        item('הקלטה חלופית', c.fallback_served ? 'הושמעה' : 'לא'));
}

function recording(callSid, r, ctx, blobs) {
    const player = h('div', { class: 'player' });
    const button = h('button', { type: 'button', class: 'primary', onclick: async () => {
        button.disabled = true;
        replace(player, h('span', { class: 'muted' }, 'טוען את ההקלטה…'));
        try {
            const url = await audioUrl(callSid, r.id, ctx.signal);
            blobs.push(url);
            const audio = h('audio', { controls: true, preload: 'auto', src: url });
            replace(player, audio);
            button.remove();
            audio.play().catch(() => { /* the reader presses play */ });
        } catch (e) {
            button.disabled = false;
            if (e.status === 404) {
                replace(player, notice('warn', 'קובץ השמע אינו שמור בשרת הזה'
                    + (r.url ? ' (נשמר אצל Twilio).' : '.')));
            } else {
                ctx.fail(e, player);
            }
        }
    } }, '▶ השמעה');

    const t = r.transcript;
    return h('article', { class: 'recording', 'data-recording': r.id },
        h('p', { class: 'meta' },
          h('strong', {}, 'הקלטה'), ' · ', label('source', r.source), ' · ',
          duration(r.duration_s), ' · ', when(r.created_at),
          r.recording_sid ? [' · ', sid(r.recording_sid)] : null),
        h('div', { class: 'play' }, button, player),
        t ? h('figure', { class: 'transcript' },
              h('figcaption', {}, 'תמליל',
                t.engine ? h('span', { class: 'muted' }, ` · ${t.engine}`) : null),
              h('blockquote', { dir: 'auto', lang: t.language || null }, t.text ?? ''))
          : h('p', { class: 'muted' }, 'אין עדיין תמליל.'));
}

function timeline(events) {
    if (!events.length) return h('p', { class: 'muted' }, 'אין אירועים.');
    return h('ol', { class: 'timeline' }, events.map((e) => h('li', { 'data-event': e.event },
        clock(e.at), ' ',
        h('span', { class: `dot ${tone(e.reason)}` }, label('event', e.event)),
        e.reason ? h('span', { class: 'reason' }, ' · ', reason(e)) : null,
        details(e.detail))));
}

function reason(e) {
    if (e.event === 'status') return label('callStatus', e.reason);
    if (e.event === 'watchdog_outcome') return label('outcome', e.reason);
    if (e.event === 'watchdog_attempt') return label('reason', e.reason);
    if (e.event === 'recording') return label('source', e.reason);
    return e.reason;
}

// the event's detail (stream_sid, attempt, http_status …), as code: it is
// for the one who debugs
function details(d) {
    const keys = d && typeof d === 'object' ? Object.keys(d) : [];
    if (!keys.length) return null;
    return h('dl', { class: 'detail', dir: 'ltr' },
             keys.map((k) => [h('dt', {}, k), h('dd', {}, typeof d[k] === 'string'
                                                          ? d[k] : JSON.stringify(d[k]))]));
}
