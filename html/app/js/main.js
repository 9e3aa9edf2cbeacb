// The CRM page's shell: sign-in state, the routes under /app/ (nginx sends
// every one of them this same index.html), links that change the view
// without a reload, and one place that decides what an API error means.

import * as auth from './auth.js';
import { h, replace, notice } from './dom.js';
import signin from './views/signin.js';
import live from './views/live.js';
import calls from './views/calls.js';
import call from './views/call.js';
import threads from './views/threads.js';
import customers from './views/customers.js';

const routes = [
    [/^\/app\/?$/, null],
    [/^\/app\/signin$/, signin, 'כניסה'],
    [/^\/app\/live$/, live, 'שיחות חיות', '/app/live'],
    [/^\/app\/calls$/, calls, 'שיחות', '/app/calls'],
    [/^\/app\/calls\/(CA[0-9a-fA-F]{32})$/, call, 'שיחה', '/app/calls'],
    [/^\/app\/threads$/, threads, 'וואטסאפ', '/app/threads'],
    [/^\/app\/threads\/(\d+)$/, threads, 'וואטסאפ', '/app/threads'],
    [/^\/app\/customers$/, customers, 'לקוחות', '/app/customers'],
];

const view = document.getElementById('view');
let current = null;      // { unmount, controller }
let message = null;      // said once on the next sign-in page

export function go(path, { replace: rep = false } = {}) {
    if (rep) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    render();
}

// 401: back to sign-in, saying why; everything else is the view's to show.
function fail(err, where) {
    if (err?.name === 'AbortError') return;
    if (err?.status === 401) {
        auth.signOut();
        message = `ההתחברות אינה בתוקף (${err.message}). היכנסו שוב עם אסימון חדש.`;
        go(`/app/signin?next=${encodeURIComponent(location.pathname + location.search)}`);
        return;
    }
    let text;
    if (err?.status === 403) text = `אין הרשאה: ${err.message}`;
    else if (err?.status === 0) text = 'אין חיבור לשרת. מנסים שוב…';
    else if (err?.status) text = `שגיאה ${err.status}: ${err.message}`;
    else text = `שגיאה: ${err?.message ?? err}`;
    if (where) replace(where, notice('error', text));
    return text;
}

function render() {
    if (current) {
        current.controller.abort();
        current.unmount?.();
        current = null;
    }
    const path = location.pathname;
    const claims = auth.claims();
    let route = routes.find(([re]) => re.test(path));

    if (route && route[1] === null) {
        return go(claims ? '/app/live' : '/app/signin', { replace: true });
    }
    if (!claims && route?.[1] !== signin) {
        const next = encodeURIComponent(path + location.search);
        return go(`/app/signin?next=${next}`, { replace: true });
    }
    if (claims && auth.expired(claims) && route?.[1] !== signin) {
        return fail({ status: 401, message: 'תוקף האסימון פג' });
    }

    shell(claims, route);
    replace(view);
    if (!route) {
        document.title = 'לא נמצא · AgentLocator';
        view.append(h('h1', {}, 'הדף לא נמצא'),
                    h('p', {}, h('a', { href: '/app/live' }, 'לשיחות החיות')));
        return;
    }
    const [re, mount, title] = route;
    document.title = `${title} · AgentLocator`;
    const controller = new AbortController();
    const ctx = {
        go, fail, claims, signal: controller.signal,
        params: new URLSearchParams(location.search),
        message: message,
    };
    message = null;
    current = { controller };
    current.unmount = mount(view, ctx, ...re.exec(path).slice(1));
}

function shell(claims, route) {
    const nav = document.getElementById('nav');
    const who = document.getElementById('who');
    nav.hidden = !claims;
    who.hidden = !claims;
    for (const a of nav.querySelectorAll('a')) {
        if (route?.[3] === a.getAttribute('href')) a.setAttribute('aria-current', 'page');
        else a.removeAttribute('aria-current');
    }
    if (claims) {
        replace(document.getElementById('who-text'),
                `עסק ${claims.business_id} · ${roleName(claims.role)}`);
    }
}

function roleName(role) {
    return { admin: 'מנהל', agent: 'נציג', viewer: 'צפייה בלבד' }[role] ?? role;
}

// Links under /app/ change the view in place; the browser's own keys
// (a new tab, a download) still work.
document.addEventListener('click', (e) => {
    const a = e.target.closest('a[href]');
    if (!a || e.defaultPrevented || e.button !== 0 || a.target
        || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/app/')) return;
    e.preventDefault();
    if (url.pathname + url.search !== location.pathname + location.search) {
        go(url.pathname + url.search);
    }
});

document.getElementById('signout').addEventListener('click', () => {
    auth.signOut();
    message = 'יצאתם מהמערכת.';
    go('/app/signin');
});

window.addEventListener('popstate', render);

const taken = auth.takeFromFragment();
if (taken === 'malformed') {
    message = 'האסימון שבכתובת אינו JWT תקין.';
}
render();
