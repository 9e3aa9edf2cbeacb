// Outbound: POST /send (HMAC-authenticated) -> sock.sendMessage; /healthz.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { SECRET, startBridge } from '../test-support/fakes.js';

const hmac = (buf) => createHmac('sha256', SECRET).update(buf).digest('hex');

describe('POST /send', () => {
    let t;
    before(async () => {
        t = await startBridge();
    });
    after(async () => {
        await t.stop();
    });
    beforeEach(() => {
        t.sock.calls.length = 0;
        t.sock.sendImpl = null;
        t.sock.setConnected(true);
    });

    async function post(body, { sig, contentType = 'application/json', path = '/send', method = 'POST' } = {}) {
        const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
        const headers = { 'Content-Type': contentType };
        const signature = sig === undefined ? hmac(buf) : sig;
        if (signature !== null) headers['X-BAILEYS-SIGNATURE'] = signature;
        const res = await fetch(t.base + path, { method, headers, body: method === 'GET' ? undefined : buf });
        const text = await res.text();
        let json = null;
        try {
            json = JSON.parse(text);
        } catch {
            // not JSON
        }
        return { status: res.status, json, headers: res.headers };
    }

    test('a signed text send calls sendMessage with the jid and text, answers 200 with the id', async () => {
        const r = await post({ to: '+972501234567', text: 'שלום עולם 👋' });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
        assert.deepEqual(r.json, { provider_msg_id: 'SENT1', status: 'sent' });
        assert.deepEqual(t.sock.calls, [{ jid: '972501234567@s.whatsapp.net', content: { text: 'שלום עולם 👋' } }]);
    });

    test('media_url: an image URL is sent as an image with the caption, others as a document', async () => {
        let r = await post({ to: '+972501234567', text: 'look', media_url: 'https://cdn.example.com/p/photo.JPG?sig=1' });
        assert.equal(r.status, 200);
        r = await post({ to: '+972501234567', text: null, media_url: 'https://cdn.example.com/files/price%20list.pdf' });
        assert.equal(r.status, 200);
        r = await post({ to: '+972501234567', media_url: 'https://cdn.example.com/download?id=7' });
        assert.equal(r.status, 200);
        assert.deepEqual(t.sock.calls.map((c) => c.content), [
            { image: { url: 'https://cdn.example.com/p/photo.JPG?sig=1' }, caption: 'look' },
            { document: { url: 'https://cdn.example.com/files/price%20list.pdf' }, mimetype: 'application/pdf', fileName: 'price list.pdf' },
            { document: { url: 'https://cdn.example.com/download?id=7' }, mimetype: 'application/octet-stream', fileName: 'download' },
        ]);
    });

    test('bad, missing, wrong-length or other-body signatures are 403 and nothing is sent', async () => {
        const body = { to: '+972501234567', text: 'hi' };
        const good = hmac(Buffer.from(JSON.stringify(body)));
        const flipped = (good[0] === 'a' ? 'b' : 'a') + good.slice(1);
        for (const sig of [null, '', 'deadbeef', good.slice(0, 63), `${good}00`, flipped, hmac(Buffer.from('{}')), 'z'.repeat(64)]) {
            const r = await post(body, { sig });
            assert.equal(r.status, 403, `signature ${sig}`);
            assert.deepEqual(r.json, { error: 'invalid signature' });
        }
        // signed with another secret
        const other = createHmac('sha256', 'other').update(JSON.stringify(body)).digest('hex');
        assert.equal((await post(body, { sig: other })).status, 403);
        assert.equal(t.sock.calls.length, 0);
    });

    test('malformed requests: 400 with a reason', async () => {
        const cases = [
            ['{"to": "+972501234567", "text": ', /not valid JSON/],
            ['[1,2]', /JSON object/],
            ['null', /JSON object/],
            [{ to: '972501234567', text: 'x' }, /E\.164/],
            [{ to: '+0972501234567', text: 'x' }, /E\.164/],
            [{ to: '+12345', text: 'x' }, /E\.164/],
            [{ to: '+9725012345678901', text: 'x' }, /E\.164/],
            [{ to: 972501234567, text: 'x' }, /E\.164/],
            [{ text: 'x' }, /E\.164/],
            [{ to: '+972501234567' }, /text or media_url/],
            [{ to: '+972501234567', text: '', media_url: null }, /text or media_url/],
            [{ to: '+972501234567', text: 5 }, /text must be/],
            [{ to: '+972501234567', media_url: 'ftp://x/y.jpg' }, /media_url/],
            [{ to: '+972501234567', media_url: 'not a url' }, /media_url/],
            [{ to: '+972501234567', text: 'a'.repeat(4097) }, /over 4096/],
            [{ to: '+972501234567', text: '😀'.repeat(4097) }, /over 4096/],
        ];
        for (const [body, reason] of cases) {
            const r = await post(body);
            assert.equal(r.status, 400, JSON.stringify(body).slice(0, 60));
            assert.match(r.json.error, reason);
        }
        assert.equal(t.sock.calls.length, 0);
        // exactly 4096 characters (even astral ones) is fine
        assert.equal((await post({ to: '+972501234567', text: '😀'.repeat(4096) })).status, 200);
    });

    test('a body over 64 KB is 413, a non-JSON content type 415, other methods 405, other paths 404', async () => {
        const big = JSON.stringify({ to: '+972501234567', text: 'x'.repeat(70000) });
        let r = await post(big);
        assert.equal(r.status, 413);
        r = await post({ to: '+972501234567', text: 'hi' }, { contentType: 'text/plain' });
        assert.equal(r.status, 415);
        r = await post({ to: '+972501234567', text: 'hi' }, { contentType: 'application/x-www-form-urlencoded' });
        assert.equal(r.status, 415);
        r = await post({ to: '+972501234567', text: 'hi' }, { contentType: 'application/json; charset=utf-8' });
        assert.equal(r.status, 200);
        r = await post('', { method: 'GET' });
        assert.equal(r.status, 405);
        assert.equal(r.headers.get('allow'), 'POST');
        r = await post({ to: '+972501234567', text: 'hi' }, { path: '/sendx' });
        assert.equal(r.status, 404);
        r = await post({ to: '+972501234567', text: 'hi' }, { path: '/' });
        assert.equal(r.status, 404);
        assert.equal(t.sock.calls.length, 1);
    });

    test('a chunked body that grows over 64 KB is 413', async () => {
        const status = await new Promise((resolve, reject) => {
            const req = http.request(`${t.base}/send`, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'X-BAILEYS-SIGNATURE': 'x' },
            }, (res) => {
                res.resume();
                resolve(res.statusCode);
            });
            req.on('error', reject);
            for (let i = 0; i < 9; i++) req.write(Buffer.alloc(8 * 1024, 0x20));
            req.end();
        });
        assert.equal(status, 413);
    });

    test('not connected to WhatsApp: 503, and /healthz says so', async () => {
        let h = await (await fetch(`${t.base}/healthz`)).json();
        assert.deepEqual(h, { connected: true });
        t.sock.setConnected(false);
        const r = await post({ to: '+972501234567', text: 'hi' });
        assert.equal(r.status, 503);
        assert.deepEqual(r.json, { error: 'not connected to WhatsApp' });
        assert.equal(t.sock.calls.length, 0);
        h = await (await fetch(`${t.base}/healthz`)).json();
        assert.deepEqual(h, { connected: false });
        // a bad signature is still 403 first
        assert.equal((await post({ to: '+972501234567', text: 'hi' }, { sig: 'bad' })).status, 403);
    });

    test('sendMessage throwing is 502 with its message', async () => {
        t.sock.sendImpl = async () => {
            throw new Error('Connection Closed');
        };
        const r = await post({ to: '+972501234567', text: 'hi' });
        assert.equal(r.status, 502);
        assert.deepEqual(r.json, { error: 'Connection Closed' });
        assert.equal(t.sock.calls.length, 1);
    });
});
