// The CRM's JSON API (/api/), with the bearer token on every request.
// Errors come back as ApiError with the HTTP status and the server's own
// reason ({"error": ...}); status 0 is a network failure.

import { token } from './auth.js';

export class ApiError extends Error {
    constructor(status, message, body) {
        super(message);
        this.status = status;
        this.body = body;
    }
}

async function request(path, { method = 'GET', body, signal, raw = false } = {}) {
    const headers = { Authorization: `Bearer ${token() || ''}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
        res = await fetch(`/api/${path}`, {
            method, headers, signal, cache: 'no-store',
            body: body === undefined ? undefined : JSON.stringify(body),
        });
    } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new ApiError(0, 'אין חיבור לשרת');
    }
    if (raw && res.ok) return res;
    let json = null;
    try {
        json = await res.json();
    } catch {
        /* a proxy's HTML error page: the status says enough */
    }
    if (!res.ok) {
        throw new ApiError(res.status, json?.error || `${res.status} ${res.statusText}`, json);
    }
    return json;
}

export const get = (path, opts) => request(path, opts);
export const post = (path, body, opts) => request(path, { ...opts, method: 'POST', body });

// The query string of a list: empty values left out.
export function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
        if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return s ? `?${s}` : '';
}

// A stored recording as a blob: URL an <audio> can play (an <audio src>
// cannot send the Authorization header).
export async function audioUrl(callSid, recordingId, signal) {
    const res = await request(
        `calls/${encodeURIComponent(callSid)}/recordings/${encodeURIComponent(recordingId)}/audio`,
        { signal, raw: true });
    return URL.createObjectURL(await res.blob());
}
