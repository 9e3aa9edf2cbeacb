// Test doubles shared by the tests (kept outside test/ so that
// `node --test test/` does not count this file as a test).
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createBridge } from '../lib/bridge.js';

export const SECRET = 'test-secret-\u05e1\u05d5\u05d3-value';

/** A Baileys-like socket: ev, sendMessage recording calls, toggled connection. */
export function fakeSocket({ connected = true, pnForLid = {} } = {}) {
    const ev = new EventEmitter();
    const sock = {
        ev,
        user: { id: '15550000000:1@s.whatsapp.net' },
        calls: [],
        sendImpl: null,
        async sendMessage(jid, content) {
            sock.calls.push({ jid, content });
            if (sock.sendImpl) return sock.sendImpl(jid, content);
            return { key: { remoteJid: jid, fromMe: true, id: `SENT${sock.calls.length}` } };
        },
        signalRepository: {
            lidMapping: { async getPNForLID(lid) { return pnForLid[lid] || null; } },
        },
        setConnected(open) {
            ev.emit('connection.update', { connection: open ? 'open' : 'close' });
        },
    };
    sock.connectedInitially = connected;
    return sock;
}

/** A stand-in for the module's webhook: records requests, answers on demand. */
export async function fakeWebhook(respond = () => [200, 'ok']) {
    const requests = [];
    const server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', async () => {
            const body = Buffer.concat(chunks);
            const rec = { method: req.method, url: req.url, headers: req.headers, body, at: Date.now() };
            requests.push(rec);
            const [status, text] = await wh.respond(rec, requests.length);
            res.writeHead(status, { 'Content-Type': 'text/plain' });
            res.end(text || '');
        });
    });
    const wh = { server, requests, respond };
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    wh.url = `http://127.0.0.1:${server.address().port}/webhook/whatsapp/baileys`;
    wh.close = () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); });
    return wh;
}

export function recordingLog() {
    const lines = [];
    const at = (level) => (m) => lines.push(`${level} ${m}`);
    return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/** A listening bridge on 127.0.0.1 with a fake socket; small backoff. */
export async function startBridge(overrides = {}) {
    const mediaDir = mkdtempSync(path.join(os.tmpdir(), 'bridge-media-'));
    const sock = overrides.sock || fakeSocket();
    const log = recordingLog();
    let base = '';
    const bridge = createBridge({
        webhookUrl: 'http://127.0.0.1:9/unused',
        secret: SECRET,
        mediaDir,
        publicUrl: () => base,
        forwardAttempts: 6,
        backoffBaseMs: 5,
        backoffMaxMs: 20,
        log,
        ...overrides,
        sock,
    });
    if (sock.connectedInitially !== false) sock.setConnected(true);
    await new Promise((r) => bridge.server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${bridge.server.address().port}`;
    return {
        bridge,
        sock,
        log,
        base,
        mediaDir,
        async stop() {
            await bridge.close();
            rmSync(mediaDir, { recursive: true, force: true });
        },
    };
}

/** A port on 127.0.0.1 with nothing listening (connection refused). */
export async function closedPort() {
    const s = http.createServer();
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    const { port } = s.address();
    await new Promise((r) => s.close(r));
    return port;
}

export function textMessage(overrides = {}) {
    return {
        key: { remoteJid: '972501234567@s.whatsapp.net', fromMe: false, id: '3EB0A1B2C3D4E5F6', ...(overrides.key || {}) },
        message: overrides.message || { conversation: 'hello' },
        messageTimestamp: overrides.messageTimestamp ?? 1718000000,
        pushName: 'pushName' in overrides ? overrides.pushName : 'Dana',
    };
}
