#!/usr/bin/env node
// bench/media/peer.js: the Node peer of the nginx module's media stream
// handler, for bench/media/run.  One process, the `ws` package, no
// clustering, default Node flags.
//
//   node peer.js PORT            listens on 127.0.0.1:PORT
//   node peer.js PORT CERT KEY   the same over TLS (`https`, Node's defaults)
//
//   /ws/twilio-media        agentlocator_media_stream;       (counts only)
//   /ws/twilio-media-echo   agentlocator_media_stream echo;  (echoes media)
//   /status                 {"frames","bytes","bad","open","accepted","calls"}
//
// Per message it does what the module does: parse the JSON, dispatch on
// "event", take the start's SIDs, base64-decode the payload of "media" and
// count frames and bytes in a per-call entry (the module's registry entry).
// The echo path re-encodes the decoded payload and sends
// {"event":"media","streamSid":"MZ..","media":{"payload":".."}} back, as the
// module does.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0
    || (process.argv.length !== 3 && process.argv.length !== 5)) {
    console.error('usage: node peer.js PORT [CERT KEY]');
    process.exit(2);
}
const tls = process.argv.length === 5
    ? { cert: fs.readFileSync(process.argv[3]), key: fs.readFileSync(process.argv[4]) }
    : null;

const stats = { frames: 0, bytes: 0, bad: 0, open: 0, accepted: 0 };
const calls = new Map();   // callSid -> { streamSid, frames, bytes, state }

const SID = /^[A-Z]{2}[0-9a-f]{32}$/;

function onMessage(conn, data, isBinary) {
    if (isBinary) {
        stats.bad++;
        return;
    }

    let msg;
    try {
        msg = JSON.parse(data.toString('utf8'));
    } catch (e) {
        stats.bad++;
        return;
    }

    switch (msg.event) {
    case 'media': {
        const media = msg.media;
        if (!media || typeof media.payload !== 'string') {
            stats.bad++;
            return;
        }
        if (media.track && media.track !== 'inbound') {
            return;
        }
        const audio = Buffer.from(media.payload, 'base64');
        stats.frames++;
        stats.bytes += audio.length;
        if (conn.call) {
            conn.call.frames++;
            conn.call.bytes += audio.length;
            conn.call.lastMedia = Date.now();
        }
        if (conn.echo && conn.streamSid) {
            conn.ws.send(JSON.stringify({
                event: 'media',
                streamSid: conn.streamSid,
                media: { payload: audio.toString('base64') },
            }));
        }
        return;
    }

    case 'start': {
        const start = msg.start || {};
        const callSid = start.callSid
            || (start.customParameters && start.customParameters.call_sid);
        const streamSid = start.streamSid || msg.streamSid;
        if (conn.call || !SID.test(callSid || '') || !SID.test(streamSid || '')) {
            stats.bad++;
            return;
        }
        conn.streamSid = streamSid;
        conn.call = { streamSid, frames: 0, bytes: 0, state: 'streaming',
                      lastMedia: 0 };
        calls.set(callSid, conn.call);
        return;
    }

    case 'connected':
    case 'mark':
    case 'dtmf':
        return;

    case 'stop':
        if (conn.call) {
            conn.call.state = 'stopped';
        }
        return;

    default:
        stats.bad++;
    }
}

function onRequest(req, res) {
    if (req.url === '/status') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ...stats, calls: calls.size }));
        return;
    }
    res.writeHead(404);
    res.end();
}

const server = tls ? https.createServer(tls, onRequest)
                   : http.createServer(onRequest);

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

server.on('upgrade', (req, socket, head) => {
    const echo = req.url === '/ws/twilio-media-echo';
    if (!echo && req.url !== '/ws/twilio-media') {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
        socket.setNoDelay(true);
        const conn = { ws, echo, call: null, streamSid: null };
        stats.accepted++;
        stats.open++;
        ws.on('message', (data, isBinary) => onMessage(conn, data, isBinary));
        ws.on('close', () => {
            stats.open--;
            if (conn.call) {
                conn.call.state = 'stopped';
            }
        });
        ws.on('error', () => {});
    });
});

server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
    console.log(`peer listening on 127.0.0.1:${port}${tls ? ' (TLS)' : ''}`
                + ` pid ${process.pid}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => process.exit(0));
}
