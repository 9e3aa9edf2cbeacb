// The real bridge (tools/baileys-bridge/lib/bridge.js) on a Baileys-like
// socket, driven line by line from t/062 so the module and the bridge talk
// to each other for real, with no WhatsApp connection:
//
//   node t/clients/bridge-e2e.mjs PORT SECRET WEBHOOK_URL
//   stdin:  upsert <JSON of a messages.upsert event>   -> "ok"
//           idle                                       -> "ok" once forwards are done
//           calls                                      -> JSON of sendMessage calls
//           connected 0|1                              -> "ok"
//   stdout: "READY" once listening.
import { EventEmitter } from 'node:events';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createBridge } from '../../tools/baileys-bridge/lib/bridge.js';

const [port, secret, webhookUrl] = process.argv.slice(2);
const ev = new EventEmitter();
const calls = [];
const sock = {
    ev,
    user: { id: '972500000001:1@s.whatsapp.net' },
    async sendMessage(jid, content) {
        calls.push({ jid, content });
        return { key: { remoteJid: jid, fromMe: true, id: `3EB0E2E${calls.length}` } };
    },
};
const quiet = { info() {}, warn() {}, error: (m) => process.stderr.write(`${m}\n`) };
const bridge = createBridge({
    webhookUrl, secret, sock, log: quiet,
    mediaDir: mkdtempSync(path.join(os.tmpdir(), 'bridge-e2e-')),
    publicUrl: `http://127.0.0.1:${port}`,
    backoffBaseMs: 50, backoffMaxMs: 200,
});
ev.emit('connection.update', { connection: 'open' });
await new Promise((r) => bridge.server.listen(Number(port), '127.0.0.1', r));
process.stdout.write('READY\n');

for await (const line of readline.createInterface({ input: process.stdin })) {
    const [cmd, ...rest] = line.split(' ');
    const arg = rest.join(' ');
    if (cmd === 'upsert') {
        ev.emit('messages.upsert', JSON.parse(arg));
        process.stdout.write('ok\n');
    } else if (cmd === 'idle') {
        await bridge.idle();
        process.stdout.write('ok\n');
    } else if (cmd === 'calls') {
        process.stdout.write(`${JSON.stringify(calls)}\n`);
    } else if (cmd === 'connected') {
        ev.emit('connection.update', { connection: arg === '1' ? 'open' : 'close' });
        process.stdout.write('ok\n');
    }
}
await bridge.close();
