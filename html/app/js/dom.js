// Building the page's DOM.  Every value that came from the API becomes a
// text node (textContent), never markup: names and messages are written by
// callers on the phone and on WhatsApp.

export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children) {
        if (c === null || c === undefined || c === false) continue;
        if (Array.isArray(c)) append(el, c);
        else if (c instanceof Node) el.appendChild(c);
        else el.appendChild(document.createTextNode(String(c)));
    }
}

export function replace(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
}

// Phone numbers and SIDs read left to right inside Hebrew text.
export function ltr(text, cls) {
    return h('bdi', { dir: 'ltr', class: cls }, text ?? '—');
}

export const phone = (p) => ltr(p, 'phone');

// A name as its writer wrote it: Hebrew, Latin or markup-like, isolated so
// that its own direction never reorders the text around it.
export function name(n) {
    return n === null || n === undefined || n === ''
        ? h('span', { class: 'name muted' }, 'ללא שם')
        : h('bdi', { class: 'name' }, n);
}
export const sid = (s) => ltr(s, 'sid');

const dateTime = new Intl.DateTimeFormat('he-IL', {
    day: 'numeric', month: 'numeric', year: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeOnly = new Intl.DateTimeFormat('he-IL', {
    hour: '2-digit', minute: '2-digit', second: '2-digit',
});

function formatted(fmt, iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : fmt.format(d);
}

export function when(iso) {
    return h('time', { datetime: iso || null }, formatted(dateTime, iso));
}

export function clock(iso) {
    return h('time', { datetime: iso || null }, formatted(timeOnly, iso));
}

// 75 -> "1:15", 3725 -> "1:02:05"
export function duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const s = Math.max(0, Math.floor(seconds));
    const mm = String(Math.floor(s / 60) % 60);
    const ss = String(s % 60).padStart(2, '0');
    const text = s >= 3600
        ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
    return ltr(text, 'num');
}

export function count(n) {
    return ltr(n === null || n === undefined ? '—' : Number(n).toLocaleString('he-IL'),
               'num');
}

// A short notice in a view: kind is "error", "warn" or "info".
export function notice(kind, text) {
    return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
             text);
}
