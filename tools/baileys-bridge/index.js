#!/usr/bin/env node
// Entry point: validates the configuration, starts the HTTP side of the
// bridge, then connects to WhatsApp with Baileys (QR login on first start)
// and hands every (re)connected socket to the bridge.
import { mkdirSync } from 'node:fs';
import { ConfigError, loadConfig } from './lib/config.js';
import { createBridge, defaultLog } from './lib/bridge.js';

const log = defaultLog();

let cfg;
try {
    cfg = loadConfig(process.env);
} catch (e) {
    if (e instanceof ConfigError) {
        process.stderr.write(`baileys-bridge: ${e.message}\n`);
        process.exit(2);
    }
    throw e;
}

// Only now load Baileys: a bad configuration never gets this far.
const baileys = await import('baileys');
const { default: qrcode } = await import('qrcode-terminal');
const { default: pino } = await import('pino');
const makeWASocket = baileys.makeWASocket || baileys.default;
const { useMultiFileAuthState, downloadMediaMessage, DisconnectReason } = baileys;

const logger = pino({ level: cfg.baileysLogLevel });

try {
    mkdirSync(cfg.authDir, { recursive: true, mode: 0o700 });
} catch (e) {
    process.stderr.write(`baileys-bridge: cannot create BRIDGE_AUTH_DIR ${cfg.authDir}: ${e.code || e.message}\n`);
    process.exit(2);
}

let bridge;
try {
    bridge = createBridge({
        webhookUrl: cfg.webhookUrl,
        secret: cfg.secret,
        mediaDir: cfg.mediaDir,
        publicUrl: cfg.publicUrl,
        forwardAttempts: cfg.forwardAttempts,
        maxMediaBytes: cfg.maxMediaBytes,
        log,
        downloadMedia: (msg, sock) => downloadMediaMessage(msg, 'stream', {}, {
            logger,
            reuploadRequest: sock.updateMediaMessage,
        }),
    });
} catch (e) {
    process.stderr.write(`baileys-bridge: cannot use BRIDGE_MEDIA_DIR ${cfg.mediaDir}: ${e.code || e.message}\n`);
    process.exit(2);
}

await new Promise((resolve) => {
    bridge.server.once('error', (e) => {
        process.stderr.write(`baileys-bridge: cannot listen on ${cfg.listen.text}: ${e.code || e.message}\n`);
        process.exit(1);
    });
    bridge.server.listen(cfg.listen.port, cfg.listen.host, resolve);
});
log.info(`listening on ${cfg.listen.text}; forwarding to ${cfg.webhookUrl}`);

const { state, saveCreds } = await useMultiFileAuthState(cfg.authDir);

let sock = null;
let retryDelay = 1000;
let reconnectTimer = null;
let stopping = false;

function connect() {
    reconnectTimer = null;
    const s = makeWASocket({
        auth: state,
        logger,
        markOnlineOnConnect: false, // keep the phone's notifications
        syncFullHistory: false,
    });
    sock = s;
    bridge.setSocket(s);
    s.ev.on('creds.update', saveCreds);
    s.ev.on('connection.update', (update) => {
        if (s !== sock) return;
        const { connection, lastDisconnect, qr } = update;
        if (qr) {
            log.info('scan this QR code with WhatsApp on the phone: Settings > Linked devices > Link a device');
            qrcode.generate(qr, { small: true }, (art) => process.stdout.write(`${art}\n`));
        }
        if (connection === 'open') {
            retryDelay = 1000;
            log.info(`connected to WhatsApp as ${s.user && s.user.id}`);
        } else if (connection === 'close') {
            const code = lastDisconnect && lastDisconnect.error && lastDisconnect.error.output
                && lastDisconnect.error.output.statusCode;
            if (stopping) return;
            if (code === DisconnectReason.loggedOut) {
                log.error(`logged out of WhatsApp: delete ${cfg.authDir} and start again to link a device`);
                shutdown(1);
                return;
            }
            // restartRequired (after the QR scan) reconnects at once.
            const delay = code === DisconnectReason.restartRequired ? 0 : retryDelay;
            retryDelay = Math.min(retryDelay * 2, 30000);
            const why = [code, lastDisconnect && lastDisconnect.error && lastDisconnect.error.message].filter(Boolean).join(' ');
            log.warn(`connection closed (${why || 'unknown'}), reconnecting in ${delay} ms`);
            reconnectTimer = setTimeout(connect, delay);
        }
    });
}

async function shutdown(code) {
    if (stopping) return;
    stopping = true;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    try {
        if (sock && typeof sock.end === 'function') sock.end(undefined);
    } catch {
        // closing anyway
    }
    await bridge.close().catch(() => {});
    process.exit(code);
}

process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
process.on('unhandledRejection', (e) => {
    log.error(`unhandled rejection: ${(e && e.message) || e}`);
});

connect();
