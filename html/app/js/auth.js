// The bearer token (a JWT from tools/token): kept in sessionStorage, so it
// lives as long as the tab and never reaches a cookie.  `#token=<jwt>` in
// the address (what `make run` prints) is taken once and removed from the
// address bar and the history.  The claims are read only to show who is
// signed in; nginx checks the signature on every request.

const KEY = 'agentlocator.token';

export function takeFromFragment() {
    const m = location.hash.match(/^#token=([^&]+)/);
    if (!m) return false;
    const token = decodeURIComponent(m[1]).trim();
    history.replaceState(history.state, '', location.pathname + location.search);
    if (!claimsOf(token)) return 'malformed';
    sessionStorage.setItem(KEY, token);
    return true;
}

export function token() {
    return sessionStorage.getItem(KEY);
}

export function signIn(text) {
    const t = String(text || '').trim().replace(/^Bearer\s+/i, '');
    const claims = claimsOf(t);
    if (!claims) return 'האסימון אינו JWT תקין (שלושה חלקים מופרדים בנקודות).';
    if (expired(claims)) return 'תוקף האסימון פג. הפיקו אסימון חדש (tools/token).';
    sessionStorage.setItem(KEY, t);
    return null;
}

export function signOut() {
    sessionStorage.removeItem(KEY);
}

export function claims() {
    const t = token();
    return t ? claimsOf(t) : null;
}

export function expired(c) {
    return typeof c.exp === 'number' && c.exp * 1000 < Date.now() - 30000;
}

function claimsOf(t) {
    const parts = t.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return null;
    try {
        const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const c = JSON.parse(new TextDecoder().decode(bytes));
        return c && typeof c === 'object' && !Array.isArray(c) ? c : null;
    } catch {
        return null;
    }
}
