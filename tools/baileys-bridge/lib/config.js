// Configuration of the bridge, read from the environment.  Pure: no I/O
// except reading WA_SHARED_SECRET_FILE, so it is tested without WhatsApp.
import { readFileSync } from 'node:fs';

export class ConfigError extends Error {}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// "host:port", "[v6]:port" or a bare port (then host 127.0.0.1).
export function parseListen(value) {
    const s = String(value).trim();
    let host;
    let port;
    let m;
    if ((m = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(s))) {
        host = m[1];
        port = m[2];
    } else if ((m = /^([^:\s]+):(\d+)$/.exec(s))) {
        host = m[1];
        port = m[2];
    } else if (/^\d+$/.test(s)) {
        host = '127.0.0.1';
        port = s;
    } else {
        throw new ConfigError(`BRIDGE_LISTEN must be host:port (got "${s}")`);
    }
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
        throw new ConfigError(`BRIDGE_LISTEN port out of range (got "${s}")`);
    }
    return { host, port: n, text: host.includes(':') ? `[${host}]:${n}` : `${host}:${n}` };
}

function httpUrl(name, value) {
    let u;
    try {
        u = new URL(value);
    } catch {
        throw new ConfigError(`${name} is not a valid URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new ConfigError(`${name} must be an http:// or https:// URL`);
    }
    return u;
}

function positiveInt(name, value, dflt, max) {
    if (value === undefined || value === '') return dflt;
    if (!/^\d+$/.test(String(value).trim())) {
        throw new ConfigError(`${name} must be a positive integer (got "${value}")`);
    }
    const n = Number(String(value).trim());
    if (n < 1 || n > max) {
        throw new ConfigError(`${name} must be between 1 and ${max} (got "${value}")`);
    }
    return n;
}

/**
 * Build the configuration from an environment object.  Throws ConfigError
 * with a one-line message (never containing the secret) when something
 * required is missing or malformed.
 */
export function loadConfig(env = process.env) {
    const webhook = env.BRIDGE_WEBHOOK_URL;
    if (!webhook) {
        throw new ConfigError('BRIDGE_WEBHOOK_URL is required (e.g. http://127.0.0.1:8080/webhook/whatsapp/baileys)');
    }
    const webhookUrl = httpUrl('BRIDGE_WEBHOOK_URL', webhook).href;

    let secret;
    const hasSecret = env.WA_SHARED_SECRET !== undefined && env.WA_SHARED_SECRET !== '';
    const hasFile = env.WA_SHARED_SECRET_FILE !== undefined && env.WA_SHARED_SECRET_FILE !== '';
    if (hasSecret && hasFile) {
        throw new ConfigError('set only one of WA_SHARED_SECRET and WA_SHARED_SECRET_FILE');
    }
    if (hasSecret) {
        secret = env.WA_SHARED_SECRET;
    } else if (hasFile) {
        try {
            secret = readFileSync(env.WA_SHARED_SECRET_FILE, 'utf8');
        } catch (e) {
            throw new ConfigError(`cannot read WA_SHARED_SECRET_FILE ${env.WA_SHARED_SECRET_FILE}: ${e.code || e.message}`);
        }
        // A file written by `echo` ends with a newline that is not part of the secret.
        secret = secret.replace(/\r?\n$/, '');
        if (secret === '') {
            throw new ConfigError(`WA_SHARED_SECRET_FILE ${env.WA_SHARED_SECRET_FILE} is empty`);
        }
    } else {
        throw new ConfigError('WA_SHARED_SECRET or WA_SHARED_SECRET_FILE is required');
    }

    const listen = parseListen(env.BRIDGE_LISTEN || '127.0.0.1:3100');
    const publicUrl = (env.BRIDGE_PUBLIC_URL
        ? httpUrl('BRIDGE_PUBLIC_URL', env.BRIDGE_PUBLIC_URL).href
        : `http://${listen.text}`).replace(/\/+$/, '');

    const baileysLogLevel = (env.BRIDGE_BAILEYS_LOG_LEVEL || 'warn').toLowerCase();
    if (!LOG_LEVELS.includes(baileysLogLevel)) {
        throw new ConfigError(`BRIDGE_BAILEYS_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
    }

    return {
        webhookUrl,
        secret,
        listen,
        authDir: env.BRIDGE_AUTH_DIR || './auth',
        mediaDir: env.BRIDGE_MEDIA_DIR || './media',
        publicUrl,
        forwardAttempts: positiveInt('BRIDGE_FORWARD_ATTEMPTS', env.BRIDGE_FORWARD_ATTEMPTS, 6, 100),
        maxMediaBytes: positiveInt('BRIDGE_MEDIA_MAX_BYTES', env.BRIDGE_MEDIA_MAX_BYTES, 16 * 1024 * 1024, 2 ** 31),
        baileysLogLevel,
    };
}
