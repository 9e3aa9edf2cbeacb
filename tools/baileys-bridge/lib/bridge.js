// The bridge's logic, independent of a live WhatsApp connection: it takes a
// Baileys-like socket ({ ev, sendMessage, signalRepository? }), forwards
// inbound 1:1 messages to the module's webhook (signed, with retries) and
// serves POST /send, GET /media/<name> and GET /healthz.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const SIGNATURE_HEADER = 'x-baileys-signature';
export const E164_RE = /^\+[1-9][0-9]{6,14}$/;
export const MAX_TEXT_CHARS = 4096;
export const MAX_SEND_BODY = 64 * 1024;

// Extension <-> Content-Type for the media the bridge stores and serves.
// An unknown type is stored as .bin and served as application/octet-stream.
const MIME_EXT = [
    ['image/jpeg', 'jpg'],
    ['image/png', 'png'],
    ['image/webp', 'webp'],
    ['image/gif', 'gif'],
    ['video/mp4', 'mp4'],
    ['video/3gpp', '3gp'],
    ['video/quicktime', 'mov'],
    ['audio/ogg', 'ogg'],
    ['audio/mpeg', 'mp3'],
    ['audio/mp4', 'm4a'],
    ['audio/aac', 'aac'],
    ['audio/amr', 'amr'],
    ['audio/wav', 'wav'],
    ['application/pdf', 'pdf'],
    ['application/msword', 'doc'],
    ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'docx'],
    ['application/vnd.ms-excel', 'xls'],
    ['application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'xlsx'],
    ['application/vnd.ms-powerpoint', 'ppt'],
    ['application/vnd.openxmlformats-officedocument.presentationml.presentation', 'pptx'],
    ['text/plain', 'txt'],
    ['text/csv', 'csv'],
    ['application/zip', 'zip'],
];
const EXT_BY_MIME = new Map(MIME_EXT);
const MIME_BY_EXT = new Map(MIME_EXT.map(([m, e]) => [e, m]));
MIME_BY_EXT.set('jpeg', 'image/jpeg');

// Extensions of a /send media_url that are sent as an image; anything else
// goes as a document.
const IMAGE_EXTS = new Set(['jpg', 'jpeg', 'png', 'webp']);

const MEDIA_NAME_RE = /^[A-Za-z0-9_-]{32}\.[a-z0-9]{1,5}$/;
const MEDIA_KINDS = ['imageMessage', 'videoMessage', 'audioMessage', 'documentMessage'];

/** Lowercase hex HMAC-SHA256 of a Buffer. */
export function sign(secret, buf) {
    return createHmac('sha256', secret).update(buf).digest('hex');
}

/** Constant-time check of a hex signature header against the body. */
export function verifySignature(secret, buf, header) {
    if (typeof header !== 'string' || header === '') return false;
    const expected = Buffer.from(sign(secret, buf), 'latin1');
    const given = Buffer.from(header.trim().toLowerCase(), 'latin1');
    if (given.length !== expected.length) return false;
    return timingSafeEqual(given, expected);
}

function baseMime(mimetype) {
    return typeof mimetype === 'string' ? mimetype.split(';')[0].trim().toLowerCase() : '';
}

export function extForMime(mimetype) {
    return EXT_BY_MIME.get(baseMime(mimetype)) || 'bin';
}

export function mimeForExt(ext) {
    return MIME_BY_EXT.get(String(ext).toLowerCase()) || 'application/octet-stream';
}

function jidServer(jid) {
    const at = typeof jid === 'string' ? jid.lastIndexOf('@') : -1;
    return at < 0 ? '' : jid.slice(at + 1);
}

const PN_SERVERS = new Set(['s.whatsapp.net', 'c.us', 'hosted']);
const LID_SERVERS = new Set(['lid', 'hosted.lid']);
export const isPnJid = (jid) => PN_SERVERS.has(jidServer(jid));
export const isLidJid = (jid) => LID_SERVERS.has(jidServer(jid));

/**
 * "972501234567:12@s.whatsapp.net" -> "+972501234567"; null when the user
 * part is not a plausible phone number.
 */
export function jidToE164(jid) {
    if (!isPnJid(jid)) return null;
    const user = jid.slice(0, jid.lastIndexOf('@')).split(':')[0].split('_')[0];
    const e164 = `+${user}`;
    return E164_RE.test(e164) ? e164 : null;
}

/** Unwrap ephemeral / view-once / document-with-caption / edited wrappers. */
export function normalizeContent(message) {
    let m = message;
    for (let i = 0; i < 5 && m; i++) {
        const inner = m.ephemeralMessage || m.viewOnceMessage || m.viewOnceMessageV2
            || m.viewOnceMessageV2Extension || m.documentWithCaptionMessage || m.editedMessage;
        if (!inner || !inner.message) break;
        m = inner.message;
    }
    return m || null;
}

function toUnixSeconds(ts) {
    if (ts === undefined || ts === null) return Math.floor(Date.now() / 1000);
    // protobuf Long, number, string or bigint
    const n = typeof ts === 'object' && typeof ts.toNumber === 'function' ? ts.toNumber() : Number(ts);
    return Number.isFinite(n) && n > 0 ? Math.floor(n) : Math.floor(Date.now() / 1000);
}

/**
 * Classify one upserted message without any I/O.  Returns
 * { skip: reason } or { text, media: { kind, mimetype, fileLength } | null,
 * id, name, timestamp }.
 */
export function classifyMessage(msg) {
    const key = msg && msg.key;
    if (!key || !key.id) return { skip: 'no key' };
    if (key.fromMe) return { skip: 'fromMe' };
    const jid = key.remoteJid;
    if (!isPnJid(jid) && !isLidJid(jid)) return { skip: `not a 1:1 chat (${jidServer(jid) || 'no jid'})` };
    if (msg.messageStubType) return { skip: 'stub' };
    const c = normalizeContent(msg.message);
    if (!c) return { skip: 'no content' };
    let media = null;
    for (const kind of MEDIA_KINDS) {
        if (c[kind]) {
            media = {
                kind,
                mimetype: baseMime(c[kind].mimetype) ? String(c[kind].mimetype) : null,
                fileLength: c[kind].fileLength == null ? null : Number(c[kind].fileLength),
                caption: c[kind].caption || null,
            };
            break;
        }
    }
    const text = c.conversation || (c.extendedTextMessage && c.extendedTextMessage.text)
        || (media && media.caption) || null;
    if (!text && !media) return { skip: 'no text or media' };
    return {
        id: key.id,
        text: text || null,
        media,
        name: msg.pushName || null,
        timestamp: toUnixSeconds(msg.messageTimestamp),
    };
}

/** The phone-number JID of a 1:1 message key, preferring what the key offers. */
export async function resolvePhoneJid(key, sock) {
    for (const j of [key.remoteJid, key.remoteJidAlt, key.senderPn]) {
        if (isPnJid(j)) return j;
    }
    const mapping = sock && sock.signalRepository && sock.signalRepository.lidMapping;
    if (mapping && typeof mapping.getPNForLID === 'function') {
        for (const j of [key.remoteJid, key.remoteJidAlt]) {
            if (!isLidJid(j)) continue;
            try {
                const pn = await mapping.getPNForLID(j);
                if (isPnJid(pn)) return pn;
            } catch {
                // fall through: unresolved
            }
        }
    }
    return null;
}

export function defaultLog() {
    const line = (level) => (msg) => process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
    return { info: line('info'), warn: line('warn'), error: line('error') };
}

function firstLine(s) {
    const l = String(s || '').split(/\r?\n/, 1)[0].trim();
    return l.length > 200 ? `${l.slice(0, 200)}...` : l;
}

function semaphore(max) {
    let active = 0;
    const waiting = [];
    return {
        acquire() {
            if (active < max) {
                active++;
                return Promise.resolve();
            }
            return new Promise((resolve) => waiting.push(resolve));
        },
        release() {
            const next = waiting.shift();
            if (next) next();
            else active--;
        },
    };
}

function sendJson(res, status, obj, extraHeaders = {}) {
    const body = Buffer.from(JSON.stringify(obj), 'utf8');
    res.writeHead(status, {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': body.length,
        'Cache-Control': 'no-store',
        ...extraHeaders,
    });
    res.end(body);
}

/**
 * Create the bridge.
 *
 * options:
 *   sock              Baileys-like socket (may be given later with setSocket)
 *   webhookUrl        module webhook (required)
 *   secret            shared HMAC secret (required)
 *   mediaDir          where received media are stored (required)
 *   publicUrl         base of media links: string, or function returning one
 *   forwardAttempts   total attempts per message (default 6)
 *   backoffBaseMs     first retry delay (default 500), doubling
 *   backoffMaxMs      retry delay cap (default 30000)
 *   forwardTimeoutMs  one webhook request's timeout (default 15000)
 *   maxMediaBytes     bigger media are not stored (default 16 MiB)
 *   maxConcurrentForwards  webhook requests in flight at once (default 8)
 *   downloadMedia     async (msg, sock) => Buffer | Readable | AsyncIterable
 *   log               { info, warn, error } taking one-line strings
 *
 * Returns { server, setSocket, isConnected, handleUpsert, idle, close }.
 * The server is not listening yet: call server.listen().
 */
export function createBridge(options) {
    const opts = {
        forwardAttempts: 6,
        backoffBaseMs: 500,
        backoffMaxMs: 30000,
        forwardTimeoutMs: 15000,
        maxMediaBytes: 16 * 1024 * 1024,
        maxConcurrentForwards: 8,
        ...options,
    };
    for (const k of ['webhookUrl', 'secret', 'mediaDir']) {
        if (!opts[k]) throw new Error(`createBridge: ${k} is required`);
    }
    const log = opts.log || defaultLog();
    const secret = opts.secret;
    const mediaDir = path.resolve(opts.mediaDir);
    mkdirSync(mediaDir, { recursive: true, mode: 0o700 });
    const publicUrl = () => String(typeof opts.publicUrl === 'function' ? opts.publicUrl() : (opts.publicUrl || '')).replace(/\/+$/, '');

    let sock = null;
    let connected = false;
    let detach = () => {};
    const tasks = new Set();
    // At most this many webhook requests in flight; a message waiting for
    // its retry holds no slot, so it never holds the others back.
    const slots = semaphore(opts.maxConcurrentForwards);
    const closing = new AbortController();

    function onConnectionUpdate(update) {
        if (!update || !update.connection) return;
        connected = update.connection === 'open';
    }
    function onUpsert(event) {
        handleUpsert(event);
    }

    function setSocket(next) {
        detach();
        sock = next || null;
        connected = false;
        if (!sock) {
            detach = () => {};
            return;
        }
        const s = sock;
        s.ev.on('connection.update', onConnectionUpdate);
        s.ev.on('messages.upsert', onUpsert);
        detach = () => {
            const off = (s.ev.off || s.ev.removeListener);
            if (typeof off === 'function') {
                off.call(s.ev, 'connection.update', onConnectionUpdate);
                off.call(s.ev, 'messages.upsert', onUpsert);
            }
        };
    }

    function track(promise) {
        tasks.add(promise);
        promise.finally(() => tasks.delete(promise));
        return promise;
    }

    /** Handle a messages.upsert event: each message is an independent task. */
    function handleUpsert(event) {
        const messages = (event && Array.isArray(event.messages)) ? event.messages : [];
        // 'notify' are new messages; 'append' also carries messages that
        // reached us while the bridge was offline.  Both are forwarded; the
        // filters below drop our own messages, stubs and other chats.
        if (event && event.type !== 'notify' && event.type !== 'append') return;
        const s = sock;
        for (const msg of messages) {
            track(processMessage(msg, s).catch((e) => {
                log.error(`message ${msg && msg.key && msg.key.id}: ${e && e.message}`);
            }));
        }
    }

    async function processMessage(msg, s) {
        if (closing.signal.aborted) return;
        const info = classifyMessage(msg);
        if (info.skip) return;
        const pnJid = await resolvePhoneJid(msg.key, s);
        const from = pnJid && jidToE164(pnJid);
        if (!from) {
            log.warn(`message ${info.id}: no phone number for ${msg.key.remoteJid}, not forwarded`);
            return;
        }
        let mediaUrl = null;
        if (info.media) {
            mediaUrl = await storeMedia(msg, info, s);
        }
        const payload = {
            from,
            text: info.text,
            media_url: mediaUrl,
            media_type: info.media ? info.media.mimetype : null,
            provider_msg_id: info.id,
            name: info.name,
            timestamp: info.timestamp,
        };
        await forward(payload);
    }

    async function storeMedia(msg, info, s) {
        const { media, id } = info;
        if (media.fileLength !== null && media.fileLength > opts.maxMediaBytes) {
            log.warn(`message ${id}: ${media.kind} of ${media.fileLength} bytes is over ${opts.maxMediaBytes}, forwarded without media_url`);
            return null;
        }
        if (typeof opts.downloadMedia !== 'function') {
            log.warn(`message ${id}: no media downloader, forwarded without media_url`);
            return null;
        }
        const name = `${randomBytes(24).toString('base64url')}.${extForMime(media.mimetype)}`;
        const final = path.join(mediaDir, name);
        const tmp = path.join(mediaDir, `.part-${name}`);
        let out = null;
        try {
            const data = await opts.downloadMedia(msg, s);
            const source = Buffer.isBuffer(data) || data instanceof Uint8Array ? Readable.from([data]) : data;
            let bytes = 0;
            const limit = opts.maxMediaBytes;
            await pipeline(source, async function* (chunks) {
                for await (const chunk of chunks) {
                    bytes += chunk.length;
                    if (bytes > limit) {
                        const e = new Error('too large');
                        e.code = 'EMEDIATOOLARGE';
                        throw e;
                    }
                    yield chunk;
                }
            }, (out = createWriteStream(tmp, { mode: 0o600 })));
            await rename(tmp, final);
        } catch (e) {
            // The stream opens its file on the thread pool: an unlink before
            // that open completes would find nothing and leave the file behind.
            if (out && !out.closed) await once(out, 'close').catch(() => {});
            await unlink(tmp).catch(() => {});
            if (e && e.code === 'EMEDIATOOLARGE') {
                log.warn(`message ${id}: ${media.kind} is over ${opts.maxMediaBytes} bytes, forwarded without media_url`);
            } else {
                log.warn(`message ${id}: media download failed (${e && e.message}), forwarded without media_url`);
            }
            return null;
        }
        return `${publicUrl()}/media/${name}`;
    }

    function sleep(ms) {
        return new Promise((resolve) => {
            if (closing.signal.aborted) return resolve();
            const t = setTimeout(done, ms);
            function done() {
                clearTimeout(t);
                closing.signal.removeEventListener('abort', done);
                resolve();
            }
            closing.signal.addEventListener('abort', done, { once: true });
        });
    }

    function requestSignal() {
        const timeout = AbortSignal.timeout(opts.forwardTimeoutMs);
        // AbortSignal.any is in Node >= 20.3
        return typeof AbortSignal.any === 'function' ? AbortSignal.any([timeout, closing.signal]) : timeout;
    }

    /** POST one payload to the webhook with retries; resolves true on 2xx. */
    async function forward(payload) {
        const body = Buffer.from(JSON.stringify(payload), 'utf8');
        const headers = {
            'Content-Type': 'application/json',
            'X-BAILEYS-SIGNATURE': sign(secret, body),
        };
        const id = payload.provider_msg_id;
        let reason = '';
        for (let attempt = 1; attempt <= opts.forwardAttempts; attempt++) {
            if (closing.signal.aborted) {
                log.error(`forward ${id}: bridge closing, dropped after ${attempt - 1} attempt(s)${reason ? `: ${reason}` : ''}`);
                return false;
            }
            await slots.acquire();
            try {
                const res = await fetch(opts.webhookUrl, {
                    method: 'POST',
                    headers,
                    body,
                    signal: requestSignal(),
                });
                const text = await res.text().catch(() => '');
                if (res.status >= 200 && res.status < 300) {
                    log.info(`forward ${id}: delivered${attempt > 1 ? ` on attempt ${attempt}` : ''}`);
                    return true;
                }
                if (res.status >= 500 || res.status === 408 || res.status === 429) {
                    reason = `HTTP ${res.status}${firstLine(text) ? ` ${firstLine(text)}` : ''}`;
                } else {
                    log.error(`forward ${id}: webhook answered ${res.status}${firstLine(text) ? `: ${firstLine(text)}` : ''}; not retried`);
                    return false;
                }
            } catch (e) {
                const cause = e && e.cause;
                reason = (cause && (cause.code || cause.message)) || (e && (e.name === 'TimeoutError' ? 'timeout' : e.message)) || String(e);
            } finally {
                slots.release();
            }
            if (attempt < opts.forwardAttempts) {
                log.warn(`forward ${id}: attempt ${attempt}/${opts.forwardAttempts} failed (${reason}), retrying`);
                await sleep(Math.min(opts.backoffBaseMs * 2 ** (attempt - 1), opts.backoffMaxMs));
            }
        }
        log.error(`forward ${id}: gave up after ${opts.forwardAttempts} attempts: ${reason}`);
        return false;
    }

    // ---- HTTP ----

    async function readBody(req, limit) {
        const chunks = [];
        let size = 0;
        for await (const chunk of req) {
            size += chunk.length;
            if (size > limit) return null;
            chunks.push(chunk);
        }
        return Buffer.concat(chunks);
    }

    function contentFor(text, mediaUrl) {
        if (!mediaUrl) return { text };
        const u = new URL(mediaUrl);
        const base = decodeURIComponent(u.pathname.split('/').pop() || '');
        const dot = base.lastIndexOf('.');
        const ext = dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
        const caption = text ? { caption: text } : {};
        if (IMAGE_EXTS.has(ext)) return { image: { url: mediaUrl }, ...caption };
        return {
            document: { url: mediaUrl },
            mimetype: mimeForExt(ext),
            fileName: base || 'file',
            ...caption,
        };
    }

    async function handleSend(req, res) {
        if (req.method !== 'POST') {
            req.resume();
            return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'POST' });
        }
        const declared = Number(req.headers['content-length']);
        if (Number.isFinite(declared) && declared > MAX_SEND_BODY) {
            return sendJson(res, 413, { error: 'body too large' }, { Connection: 'close' });
        }
        const ctype = baseMime(req.headers['content-type']);
        if (ctype !== 'application/json') {
            req.resume();
            return sendJson(res, 415, { error: 'content type must be application/json' });
        }
        const raw = await readBody(req, MAX_SEND_BODY);
        if (raw === null) {
            return sendJson(res, 413, { error: 'body too large' }, { Connection: 'close' });
        }
        if (!verifySignature(secret, raw, req.headers[SIGNATURE_HEADER])) {
            return sendJson(res, 403, { error: 'invalid signature' });
        }
        let body;
        try {
            body = JSON.parse(raw.toString('utf8'));
        } catch {
            return sendJson(res, 400, { error: 'body is not valid JSON' });
        }
        if (!body || typeof body !== 'object' || Array.isArray(body)) {
            return sendJson(res, 400, { error: 'body must be a JSON object' });
        }
        const { to } = body;
        const text = body.text == null ? '' : body.text;
        const mediaUrl = body.media_url == null ? '' : body.media_url;
        if (typeof to !== 'string' || !E164_RE.test(to)) {
            return sendJson(res, 400, { error: 'to must be an E.164 number like +972501234567' });
        }
        if (typeof text !== 'string') return sendJson(res, 400, { error: 'text must be a string or null' });
        if (typeof mediaUrl !== 'string') return sendJson(res, 400, { error: 'media_url must be a string or null' });
        if (text === '' && mediaUrl === '') return sendJson(res, 400, { error: 'text or media_url is required' });
        if ([...text].length > MAX_TEXT_CHARS) {
            return sendJson(res, 400, { error: `text is over ${MAX_TEXT_CHARS} characters` });
        }
        if (mediaUrl !== '') {
            let u;
            try {
                u = new URL(mediaUrl);
            } catch {
                u = null;
            }
            if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
                return sendJson(res, 400, { error: 'media_url must be an http(s) URL' });
            }
        }
        const s = sock;
        if (!s || !connected) {
            return sendJson(res, 503, { error: 'not connected to WhatsApp' });
        }
        const jid = `${to.slice(1)}@s.whatsapp.net`;
        let sent;
        try {
            sent = await s.sendMessage(jid, contentFor(text, mediaUrl || null));
        } catch (e) {
            log.warn(`send: sendMessage failed: ${e && e.message}`);
            return sendJson(res, 502, { error: String((e && e.message) || e || 'send failed') });
        }
        const providerId = (sent && sent.key && sent.key.id) || null;
        log.info(`send ${providerId}: sent`);
        return sendJson(res, 200, { provider_msg_id: providerId, status: 'sent' });
    }

    async function handleMedia(req, res, name) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
            req.resume();
            return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET, HEAD' });
        }
        if (!MEDIA_NAME_RE.test(name)) return sendJson(res, 404, { error: 'not found' });
        const file = path.join(mediaDir, name);
        let st;
        try {
            st = await stat(file);
        } catch {
            return sendJson(res, 404, { error: 'not found' });
        }
        if (!st.isFile()) return sendJson(res, 404, { error: 'not found' });
        res.writeHead(200, {
            'Content-Type': mimeForExt(name.slice(name.lastIndexOf('.') + 1)),
            'Content-Length': st.size,
            'X-Content-Type-Options': 'nosniff',
            'Cache-Control': 'private, max-age=86400',
        });
        if (req.method === 'HEAD') return res.end();
        try {
            await pipeline(createReadStream(file), res);
        } catch {
            res.destroy();
        }
    }

    async function route(req, res) {
        const pathname = (req.url || '/').split('?')[0];
        if (pathname === '/send') return handleSend(req, res);
        if (pathname === '/healthz') {
            if (req.method !== 'GET' && req.method !== 'HEAD') {
                return sendJson(res, 405, { error: 'method not allowed' }, { Allow: 'GET, HEAD' });
            }
            return sendJson(res, 200, { connected: Boolean(sock && connected) });
        }
        if (pathname.startsWith('/media/')) return handleMedia(req, res, pathname.slice('/media/'.length));
        req.resume();
        return sendJson(res, 404, { error: 'not found' });
    }

    const server = http.createServer((req, res) => {
        route(req, res).catch((e) => {
            log.error(`http ${req.method} ${(req.url || '').split('?')[0]}: ${e && e.message}`);
            if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
            else res.destroy();
        });
    });
    server.requestTimeout = 30000;
    server.headersTimeout = 15000;

    async function idle() {
        while (tasks.size) await Promise.allSettled([...tasks]);
    }

    async function close() {
        closing.abort();
        detach();
        await new Promise((resolve) => {
            if (!server.listening) return resolve();
            server.close(() => resolve());
            server.closeAllConnections?.();
        });
        await idle();
    }

    if (opts.sock) setSocket(opts.sock);

    return {
        server,
        setSocket,
        isConnected: () => Boolean(sock && connected),
        handleUpsert,
        forward,
        idle,
        close,
    };
}
