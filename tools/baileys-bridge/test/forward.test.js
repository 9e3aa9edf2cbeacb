// Inbound: Baileys messages.upsert -> signed POST to the module's webhook.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
    SECRET, closedPort, fakeSocket, fakeWebhook, startBridge, textMessage,
} from '../test-support/fakes.js';
import { classifyMessage, jidToE164 } from '../lib/bridge.js';

const hmac = (buf) => createHmac('sha256', SECRET).update(buf).digest('hex');

function upsert(sock, messages, type = 'notify') {
    sock.ev.emit('messages.upsert', { messages, type });
}

describe('forwarding inbound messages', () => {
    let wh;
    let t;
    before(async () => {
        wh = await fakeWebhook();
    });
    after(async () => {
        await wh.close();
    });

    async function fresh(overrides = {}) {
        wh.requests.length = 0;
        wh.respond = () => [200, 'ok'];
        if (t) await t.stop();
        t = await startBridge({ webhookUrl: wh.url, ...overrides });
        return t;
    }
    after(async () => {
        if (t) await t.stop();
    });

    test('a text message is posted once with the exact fields and a valid signature', async () => {
        const { sock, bridge } = await fresh();
        const text = 'שלום עולם 👋🏽 — ok';
        upsert(sock, [textMessage({ message: { conversation: text } })]);
        await bridge.idle();
        assert.equal(wh.requests.length, 1);
        const r = wh.requests[0];
        assert.equal(r.method, 'POST');
        assert.equal(r.url, '/webhook/whatsapp/baileys');
        assert.equal(r.headers['content-type'], 'application/json');
        assert.equal(r.headers['x-baileys-signature'], hmac(r.body));
        assert.match(r.headers['x-baileys-signature'], /^[0-9a-f]{64}$/);
        const body = JSON.parse(r.body.toString('utf8'));
        assert.deepEqual(Object.keys(body), ['from', 'text', 'media_url', 'media_type', 'provider_msg_id', 'name', 'timestamp']);
        assert.deepEqual(body, {
            from: '+972501234567',
            text,
            media_url: null,
            media_type: null,
            provider_msg_id: '3EB0A1B2C3D4E5F6',
            name: 'Dana',
            timestamp: 1718000000,
        });
        // Hebrew and emoji travel as raw UTF-8 bytes, byte for byte.
        assert.ok(r.body.includes(Buffer.from(text, 'utf8')));
    });

    test('extended text, LID with a phone-number alt, device suffix, Long timestamp, no pushName', async () => {
        const { sock, bridge } = await fresh();
        upsert(sock, [{
            key: {
                remoteJid: '123456789012345@lid',
                remoteJidAlt: '972501234567:7@s.whatsapp.net',
                fromMe: false,
                id: 'LID1',
                addressingMode: 'lid',
            },
            message: { extendedTextMessage: { text: 'see https://example.com' } },
            messageTimestamp: { low: 1718000001, high: 0, unsigned: true, toNumber() { return 1718000001; } },
        }]);
        await bridge.idle();
        assert.equal(wh.requests.length, 1);
        const body = JSON.parse(wh.requests[0].body);
        assert.equal(body.from, '+972501234567');
        assert.equal(body.text, 'see https://example.com');
        assert.equal(body.name, null);
        assert.equal(body.timestamp, 1718000001);
    });

    test('a LID without alt is resolved through the socket LID mapping, else dropped with a log line', async () => {
        const sock = fakeSocket({ pnForLid: { '111@lid': '447700900123:2@s.whatsapp.net' } });
        const { bridge, log } = await fresh({ sock });
        upsert(sock, [
            textMessage({ key: { remoteJid: '111@lid', id: 'MAPPED' } }),
            textMessage({ key: { remoteJid: '222@lid', id: 'UNMAPPED' } }),
        ]);
        await bridge.idle();
        assert.equal(wh.requests.length, 1);
        const body = JSON.parse(wh.requests[0].body);
        assert.equal(body.from, '+447700900123');
        assert.equal(body.provider_msg_id, 'MAPPED');
        assert.ok(log.lines.some((l) => l.startsWith('warn') && l.includes('UNMAPPED') && l.includes('no phone number')));
    });

    test('an image with a caption is stored, linked and served with its bytes and Content-Type', async () => {
        const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0, 255, 4, 5]);
        const seen = [];
        const { sock, bridge, base, mediaDir } = await fresh({
            downloadMedia: async (msg, s) => {
                seen.push({ id: msg.key.id, sock: s });
                return Readable.from([bytes.subarray(0, 4), bytes.subarray(4)]);
            },
        });
        upsert(sock, [textMessage({
            key: { id: 'IMG1' },
            message: { imageMessage: { mimetype: 'image/jpeg', caption: 'תמונה 📷', fileLength: bytes.length } },
        })]);
        await bridge.idle();
        assert.equal(seen.length, 1);
        assert.equal(seen[0].sock, sock);
        assert.equal(wh.requests.length, 1);
        const body = JSON.parse(wh.requests[0].body);
        assert.equal(body.text, 'תמונה 📷');
        assert.equal(body.media_type, 'image/jpeg');
        assert.match(body.media_url, new RegExp(`^${base}/media/[A-Za-z0-9_-]{32}\\.jpg$`));
        assert.deepEqual(readdirSync(mediaDir).length, 1);
        const res = await fetch(body.media_url);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'image/jpeg');
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
        // names that are not ours, or try to leave the directory, are 404
        for (const p of ['/media/nope.jpg', '/media/..%2f..%2fetc%2fpasswd', '/media/../package.json']) {
            const r = await fetch(base + p);
            assert.equal(r.status, 404, p);
        }
    });

    test('documents, voice notes and wrapped (ephemeral, document-with-caption) media', async () => {
        const { sock, bridge } = await fresh({ downloadMedia: async () => Buffer.from('%PDF-1.4') });
        upsert(sock, [
            textMessage({
                key: { id: 'DOC1' },
                message: { documentWithCaptionMessage: { message: { documentMessage: { mimetype: 'application/pdf', caption: 'invoice', fileName: 'a.pdf' } } } },
            }),
            textMessage({
                key: { id: 'PTT1' },
                message: { ephemeralMessage: { message: { audioMessage: { mimetype: 'audio/ogg; codecs=opus', ptt: true } } } },
            }),
        ]);
        await bridge.idle();
        const byId = Object.fromEntries(wh.requests.map((r) => JSON.parse(r.body)).map((b) => [b.provider_msg_id, b]));
        assert.equal(byId.DOC1.text, 'invoice');
        assert.equal(byId.DOC1.media_type, 'application/pdf');
        assert.match(byId.DOC1.media_url, /\.pdf$/);
        assert.equal(byId.PTT1.text, null);
        assert.equal(byId.PTT1.media_type, 'audio/ogg; codecs=opus');
        assert.match(byId.PTT1.media_url, /\.ogg$/);
        const res = await fetch(byId.PTT1.media_url);
        assert.equal(res.headers.get('content-type'), 'audio/ogg');
    });

    test('media over the size bound are forwarded with media_url null and a log line', async () => {
        const { sock, bridge, log, mediaDir } = await fresh({
            maxMediaBytes: 1000,
            downloadMedia: async () => Readable.from([Buffer.alloc(600), Buffer.alloc(600)]),
        });
        upsert(sock, [
            // declared too big: not even downloaded
            textMessage({ key: { id: 'BIG1' }, message: { videoMessage: { mimetype: 'video/mp4', fileLength: 5000, caption: 'vid' } } }),
            // declared small, but the stream runs over
            textMessage({ key: { id: 'BIG2' }, message: { imageMessage: { mimetype: 'image/png' } } }),
        ]);
        await bridge.idle();
        const bodies = wh.requests.map((r) => JSON.parse(r.body));
        assert.equal(bodies.length, 2);
        for (const b of bodies) assert.equal(b.media_url, null);
        assert.equal(bodies.find((b) => b.provider_msg_id === 'BIG1').text, 'vid');
        assert.equal(bodies.find((b) => b.provider_msg_id === 'BIG1').media_type, 'video/mp4');
        assert.ok(log.lines.some((l) => l.includes('BIG1') && l.includes('over 1000')));
        assert.ok(log.lines.some((l) => l.includes('BIG2') && l.includes('over 1000')));
        assert.deepEqual(readdirSync(mediaDir), []);
    });

    test('a failed media download still forwards the caption', async () => {
        const { sock, bridge, log } = await fresh({ downloadMedia: async () => { throw new Error('410 gone'); } });
        upsert(sock, [textMessage({ key: { id: 'GONE' }, message: { imageMessage: { mimetype: 'image/jpeg', caption: 'c' } } })]);
        await bridge.idle();
        const b = JSON.parse(wh.requests[0].body);
        assert.equal(b.media_url, null);
        assert.equal(b.text, 'c');
        assert.ok(log.lines.some((l) => l.includes('GONE') && l.includes('410 gone')));
    });

    test('fromMe, groups, status, newsletters, broadcasts, reactions, protocol and stub messages are not forwarded', async () => {
        const { sock, bridge } = await fresh({ downloadMedia: async () => Buffer.from('x') });
        upsert(sock, [
            textMessage({ key: { id: 'ME', fromMe: true } }),
            textMessage({ key: { id: 'GRP', remoteJid: '120363025246125486@g.us', participant: '972501234567@s.whatsapp.net' } }),
            textMessage({ key: { id: 'STATUS', remoteJid: 'status@broadcast', participant: '972501234567@s.whatsapp.net' } }),
            textMessage({ key: { id: 'NEWS', remoteJid: '120363144038483540@newsletter' } }),
            textMessage({ key: { id: 'BCAST', remoteJid: '1718000000@broadcast' } }),
            textMessage({ key: { id: 'REACT' }, message: { reactionMessage: { key: { id: 'X' }, text: '👍' } } }),
            textMessage({ key: { id: 'PROTO' }, message: { protocolMessage: { type: 0, key: { id: 'X' } } } }),
            textMessage({ key: { id: 'EMPTY' }, message: { conversation: '' } }),
            { key: { remoteJid: '972501234567@s.whatsapp.net', id: 'STUB', fromMe: false }, messageStubType: 2, messageStubParameters: ['x'] },
            { key: { remoteJid: '972501234567@s.whatsapp.net', id: 'NOMSG', fromMe: false } },
        ]);
        await bridge.idle();
        assert.equal(wh.requests.length, 0);
        assert.equal(classifyMessage(textMessage({ key: { fromMe: true } })).skip, 'fromMe');
    });

    test('append-type upserts (messages received while offline) are forwarded too', async () => {
        const { sock, bridge } = await fresh();
        upsert(sock, [textMessage({ key: { id: 'OFFLINE1' } })], 'append');
        await bridge.idle();
        assert.equal(wh.requests.length, 1);
    });

    test('503 twice then 200: delivered on the third attempt with the same body and signature', async () => {
        const { sock, bridge, log } = await fresh();
        wh.respond = (rec, n) => (n <= 2 ? [503, 'spool busy\nmore'] : [200, 'ok']);
        upsert(sock, [textMessage({ key: { id: 'RETRY' } })]);
        await bridge.idle();
        assert.equal(wh.requests.length, 3);
        for (const r of wh.requests) {
            assert.deepEqual(r.body, wh.requests[0].body);
            assert.equal(r.headers['x-baileys-signature'], hmac(r.body));
        }
        assert.ok(log.lines.some((l) => l.includes('RETRY') && l.includes('delivered on attempt 3')));
        assert.ok(!log.lines.some((l) => l.includes('gave up')));
    });

    test('408 and 429 are retried; the backoff doubles', async () => {
        const { sock, bridge } = await fresh({ backoffBaseMs: 40, backoffMaxMs: 1000 });
        wh.respond = (rec, n) => [[408, 429, 200][n - 1], ''];
        upsert(sock, [textMessage({ key: { id: 'BACKOFF' } })]);
        await bridge.idle();
        assert.equal(wh.requests.length, 3);
        const gap1 = wh.requests[1].at - wh.requests[0].at;
        const gap2 = wh.requests[2].at - wh.requests[1].at;
        assert.ok(gap1 >= 35, `first gap ${gap1}`);
        assert.ok(gap2 >= 75, `second gap ${gap2}`);
    });

    test('403 is not retried and is logged with the status and the first line of the reason', async () => {
        const { sock, bridge, log } = await fresh();
        wh.respond = () => [403, 'invalid signature\nsecond line'];
        upsert(sock, [textMessage({ key: { id: 'FORBID' } })]);
        await bridge.idle();
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(wh.requests.length, 1);
        const lines = log.lines.filter((l) => l.includes('FORBID'));
        assert.equal(lines.length, 1);
        assert.match(lines[0], /^error .*403: invalid signature; not retried$/);
    });

    test('webhook down: gives up after BRIDGE_FORWARD_ATTEMPTS attempts and logs it', async () => {
        const port = await closedPort();
        const { sock, bridge, log } = await fresh({ webhookUrl: `http://127.0.0.1:${port}/webhook`, forwardAttempts: 4 });
        upsert(sock, [textMessage({ key: { id: 'DOWN' } })]);
        await bridge.idle();
        const warns = log.lines.filter((l) => l.startsWith('warn') && l.includes('DOWN'));
        assert.equal(warns.length, 3);
        assert.match(warns[0], /attempt 1\/4 failed \(ECONNREFUSED\)/);
        const errs = log.lines.filter((l) => l.startsWith('error') && l.includes('DOWN'));
        assert.deepEqual(errs, ['error forward DOWN: gave up after 4 attempts: ECONNREFUSED']);
    });

    test('a message being retried does not hold back the others', async () => {
        const { sock, bridge } = await fresh({ backoffBaseMs: 300, backoffMaxMs: 300, forwardAttempts: 2 });
        wh.respond = (rec) => (JSON.parse(rec.body).provider_msg_id === 'SLOW' ? [500, 'x'] : [200, 'ok']);
        const start = Date.now();
        upsert(sock, [textMessage({ key: { id: 'SLOW' } })]);
        await new Promise((r) => setTimeout(r, 30));
        upsert(sock, [textMessage({ key: { id: 'FAST' } })]);
        await new Promise((r) => setTimeout(r, 100));
        const fast = wh.requests.find((r) => JSON.parse(r.body).provider_msg_id === 'FAST');
        assert.ok(fast, 'FAST delivered while SLOW waits for its retry');
        assert.ok(fast.at - start < 250);
        await bridge.idle();
        assert.equal(wh.requests.filter((r) => JSON.parse(r.body).provider_msg_id === 'SLOW').length, 2);
    });

    test('a burst of messages is delivered with a bounded number of webhook requests in flight', async () => {
        const { sock, bridge } = await fresh({ maxConcurrentForwards: 3 });
        let inFlight = 0;
        let peak = 0;
        wh.respond = async () => {
            inFlight++;
            peak = Math.max(peak, inFlight);
            await new Promise((r) => setTimeout(r, 20));
            inFlight--;
            return [200, 'ok'];
        };
        upsert(sock, Array.from({ length: 20 }, (_, i) => textMessage({ key: { id: `BURST${i}` } })), 'append');
        await bridge.idle();
        assert.equal(wh.requests.length, 20);
        assert.equal(new Set(wh.requests.map((r) => JSON.parse(r.body).provider_msg_id)).size, 20);
        assert.ok(peak <= 3, `peak ${peak}`);
        assert.ok(peak >= 2, `peak ${peak}`);
    });

    test('a new socket handed over replaces the old one', async () => {
        const { sock: old, bridge } = await fresh();
        const next = fakeSocket();
        bridge.setSocket(next);
        assert.equal(bridge.isConnected(), false);
        next.setConnected(true);
        assert.equal(bridge.isConnected(), true);
        upsert(old, [textMessage({ key: { id: 'OLD' } })]);
        old.setConnected(false);
        assert.equal(bridge.isConnected(), true);
        upsert(next, [textMessage({ key: { id: 'NEW' } })]);
        await bridge.idle();
        assert.deepEqual(wh.requests.map((r) => JSON.parse(r.body).provider_msg_id), ['NEW']);
    });
});

test('jidToE164', () => {
    assert.equal(jidToE164('972501234567@s.whatsapp.net'), '+972501234567');
    assert.equal(jidToE164('972501234567:12@s.whatsapp.net'), '+972501234567');
    assert.equal(jidToE164('14155550123@c.us'), '+14155550123');
    assert.equal(jidToE164('123@lid'), null);
    assert.equal(jidToE164('120363025246125486@g.us'), null);
    assert.equal(jidToE164('0123456@s.whatsapp.net'), null);
    assert.equal(jidToE164(undefined), null);
});
