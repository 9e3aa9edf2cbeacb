// Configuration: loadConfig, and index.js refusing to start on a bad env
// (without ever connecting to WhatsApp).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig, parseListen } from '../lib/config.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const indexJs = path.join(here, '..', 'index.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bridge-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const WEBHOOK = 'http://127.0.0.1:8080/webhook/whatsapp/baileys';

describe('loadConfig', () => {
    test('defaults', () => {
        const c = loadConfig({ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 's3cret' });
        assert.equal(c.webhookUrl, WEBHOOK);
        assert.equal(c.secret, 's3cret');
        assert.deepEqual(c.listen, { host: '127.0.0.1', port: 3100, text: '127.0.0.1:3100' });
        assert.equal(c.authDir, './auth');
        assert.equal(c.mediaDir, './media');
        assert.equal(c.publicUrl, 'http://127.0.0.1:3100');
        assert.equal(c.forwardAttempts, 6);
        assert.equal(c.maxMediaBytes, 16 * 1024 * 1024);
        assert.equal(c.baileysLogLevel, 'warn');
    });

    test('explicit values', () => {
        const c = loadConfig({
            BRIDGE_WEBHOOK_URL: WEBHOOK,
            WA_SHARED_SECRET: 's',
            BRIDGE_LISTEN: '[::1]:3200',
            BRIDGE_AUTH_DIR: '/var/lib/bridge/auth',
            BRIDGE_MEDIA_DIR: '/var/lib/bridge/media',
            BRIDGE_FORWARD_ATTEMPTS: '3',
        });
        assert.deepEqual(c.listen, { host: '::1', port: 3200, text: '[::1]:3200' });
        assert.equal(c.publicUrl, 'http://[::1]:3200');
        assert.equal(c.authDir, '/var/lib/bridge/auth');
        assert.equal(c.mediaDir, '/var/lib/bridge/media');
        assert.equal(c.forwardAttempts, 3);
        const d = loadConfig({ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 's', BRIDGE_PUBLIC_URL: 'https://wa.example.com/bridge/' });
        assert.equal(d.publicUrl, 'https://wa.example.com/bridge');
        assert.deepEqual(parseListen('3300'), { host: '127.0.0.1', port: 3300, text: '127.0.0.1:3300' });
    });

    test('WA_SHARED_SECRET_FILE: read, final newline dropped', () => {
        const f = path.join(tmp, 'secret');
        writeFileSync(f, 'from-file\n');
        assert.equal(loadConfig({ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET_FILE: f }).secret, 'from-file');
    });

    test('errors are ConfigError with one line, never the secret', () => {
        const bad = [
            [{}, /BRIDGE_WEBHOOK_URL is required/],
            [{ BRIDGE_WEBHOOK_URL: 'nope', WA_SHARED_SECRET: 'TOPSECRET' }, /BRIDGE_WEBHOOK_URL is not a valid URL/],
            [{ BRIDGE_WEBHOOK_URL: 'ftp://x/', WA_SHARED_SECRET: 'TOPSECRET' }, /http/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK }, /WA_SHARED_SECRET or WA_SHARED_SECRET_FILE is required/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', WA_SHARED_SECRET_FILE: '/x' }, /only one/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET_FILE: path.join(tmp, 'missing') }, /cannot read WA_SHARED_SECRET_FILE .*ENOENT/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_LISTEN: 'localhost' }, /BRIDGE_LISTEN/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_LISTEN: '127.0.0.1:70000' }, /BRIDGE_LISTEN/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_FORWARD_ATTEMPTS: '0' }, /BRIDGE_FORWARD_ATTEMPTS/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_FORWARD_ATTEMPTS: 'six' }, /BRIDGE_FORWARD_ATTEMPTS/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_PUBLIC_URL: '/media' }, /BRIDGE_PUBLIC_URL/],
            [{ BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_BAILEYS_LOG_LEVEL: 'loud' }, /BRIDGE_BAILEYS_LOG_LEVEL/],
        ];
        for (const [env, re] of bad) {
            assert.throws(() => loadConfig(env), (e) => {
                assert.ok(e instanceof ConfigError);
                assert.match(e.message, re);
                assert.ok(!e.message.includes('\n'));
                assert.ok(!e.message.includes('TOPSECRET'));
                return true;
            });
        }
    });
});

describe('index.js with a bad environment', () => {
    function run(env) {
        const authDir = path.join(tmp, `auth-${Math.random().toString(36).slice(2)}`);
        const r = spawnSync(process.execPath, [indexJs], {
            env: { PATH: process.env.PATH, BRIDGE_AUTH_DIR: authDir, BRIDGE_LISTEN: '127.0.0.1:0', ...env },
            encoding: 'utf8',
            timeout: 20000,
        });
        return { ...r, authDir };
    }

    const cases = [
        ['no webhook URL', { WA_SHARED_SECRET: 'TOPSECRET' }, /^baileys-bridge: BRIDGE_WEBHOOK_URL is required/],
        ['no secret', { BRIDGE_WEBHOOK_URL: WEBHOOK }, /^baileys-bridge: WA_SHARED_SECRET or WA_SHARED_SECRET_FILE is required$/],
        ['unreadable secret file', { BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET_FILE: '/nonexistent/secret' }, /^baileys-bridge: cannot read WA_SHARED_SECRET_FILE \/nonexistent\/secret: ENOENT$/],
        ['bad listen', { BRIDGE_WEBHOOK_URL: WEBHOOK, WA_SHARED_SECRET: 'TOPSECRET', BRIDGE_LISTEN: 'nowhere' }, /^baileys-bridge: BRIDGE_LISTEN must be host:port/],
    ];
    for (const [name, env, re] of cases) {
        test(`${name}: exits non-zero with one clear line, before any WhatsApp connection`, () => {
            const r = run(env);
            assert.equal(r.error, undefined, 'did not time out');
            assert.notEqual(r.status, 0);
            assert.equal(r.status, 2);
            assert.equal(r.stdout, '');
            const lines = r.stderr.split('\n').filter(Boolean);
            assert.equal(lines.length, 1, r.stderr);
            assert.match(lines[0], re);
            assert.ok(!r.stderr.includes('TOPSECRET'));
            // the auth state was never touched: no socket was made
            assert.equal(existsSync(r.authDir), false);
        });
    }
});
