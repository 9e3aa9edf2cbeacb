#!/usr/bin/env node
// bench/media/report.js: helpers and the report of bench/media/run.
//
//   report.js status-frames nginx|node|floor URL
//                                            "frames truncated" from /status
//                                            (the floor: "bytes 0")
//   report.js machine-busy SECONDS           CPU used by anything, % of one CPU
//   report.js step RESULTS SERVER STREAMS    verdict of one "max" step; exit 1
//                                            when it was not sustained
//   report.js disturbed RESULTS              exit 0 (and print the share) when
//                                            other work used > 15 % of a CPU
//                                            in the last run's window and
//                                            nothing broke in it
//   report.js report RESULTS ERRLINES        the report; exit 1 when the run
//                                            is not valid (see README.md)
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');

const FRAME_MS = 20;
const LAG_TARGET_MS = 20;
// product decision of issue 10: >= 2.5x less CPU per frame than Node at
// 1,000 paced streams, and (a later issue's) within 1.5x of the floor
const CPU_TARGET = 2.5;       // Node's CPU per frame / nginx's
const FLOOR_TARGET = 1.5;     // nginx's CPU per frame / the floor's
const MEM_TARGET = 10;        // Node's memory per stream / nginx's
const STREAMS_TARGET = 2000;
// issue 16, over TLS (wss://, what Twilio uses): memory per idle stream,
// Node's memory per stream / nginx's, nginx's CPU per frame / the TLS floor's
const TLS_MEM_KB = 8;
const TLS_MEM_TARGET = 5;
const TLS_FLOOR_TARGET = 1.5;
const OTHERS_LIMIT = 15;      // % of a CPU used by neither server nor loadgen

function parseLine(line) {
    const o = {};
    const re = /(\w+)=("([^"]*)"|\S+)/g;
    let m;
    while ((m = re.exec(line)) !== null) {
        const v = m[3] !== undefined ? m[3] : m[2];
        o[m[1]] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
    }
    return o;
}

function readResults(file) {
    const runs = [];
    const superseded = [];
    let info = {};
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (line.startsWith('INFO ')) {
            info = parseLine(line);
        } else if (line.startsWith('RUN ')) {
            runs.push(derive(parseLine(line)));
        } else if (line.startsWith('SUPERSEDED ')) {
            superseded.push(derive(parseLine(line)));
        } else if (line.startsWith('MODULE ')) {
            info.module = line.slice(7).trim();
        }
    }
    return { info, runs, superseded };
}

function derive(r) {
    const d = r.duration || 1;
    r.fps = r.frames_processed_window / d;
    r.offered_fps = r.mode === 'paced' ? r.streams * 1000 / FRAME_MS : NaN;
    r.us_per_frame = r.frames_processed_window > 0
        ? r.server_cpu_s / r.frames_processed_window * 1e6 : NaN;
    r.kb_per_stream = (r.server_rss_we_kb - r.server_rss_idle_kb) / r.streams;
    // of it, shared memory (for nginx the zone's pages this worker touched)
    r.shm_kb_per_stream = r.server_shm_we_kb !== undefined
        ? Math.max(0, r.server_shm_we_kb - r.server_shm_idle_kb) / r.streams : 0;
    r.own_kb_per_stream = r.kb_per_stream - r.shm_kb_per_stream;
    r.others_pct = (r.machine_busy_s - r.server_cpu_s - r.self_cpu_s) / d * 100;
    r.backlog_growth = r.frame_wire_avg > 0
        ? (r.backlog_end_bytes - r.backlog_start_bytes) / r.frame_wire_avg : 0;
    r.late_pct = r.frames_window > 0
        ? r.late_frames_window / r.frames_window * 100 : 0;
    return r;
}

// Conditions under which the figures of a run are not valid.
function broken(r, lenient) {
    const why = [];
    if (!r.alive_after || !r.server_alive) {
        why.push('the server died');
    }
    if (r.errlog_bad > 0) {
        why.push(`nginx logged ${r.errlog_bad} error/alert line(s)`);
    }
    const fails = r.connect_fail + r.handshake_fail + r.handshake_timeout;
    const drops = r.dropped + r.server_close;
    if (!lenient) {
        if (fails) {
            why.push(`${fails} of ${r.streams} handshakes failed`
                     + ` (connect ${r.connect_fail}, answer ${r.handshake_fail},`
                     + ` timeout ${r.handshake_timeout})`);
        }
        if (drops) {
            why.push(`${drops} streams ended by the server`);
        }
        if (r.closed_unclean) {
            why.push(`${r.closed_unclean} streams not closed cleanly`);
        }
        if (r.echo_missing || r.echo_bad) {
            why.push(`echoes: ${r.echo_missing} missing, ${r.echo_bad} wrong`
                     + ' or out of order');
        }
    }
    const clean = !fails && !drops && !r.closed_unclean;
    if (r.status_frames < 0) {
        if (r.alive_after) {
            why.push('could not read the server\'s /status');
        }
    } else if (r.server === 'floor') {
        // it counts bytes: every byte of every frame sent must have been read
        if (clean && r.status_frames !== r.ws_bytes_total) {
            why.push(`bytes lost: the floor read ${r.status_frames} of the`
                     + ` ${r.ws_bytes_total} sent`);
        }
    } else if (!r.status_truncated && clean
               && r.status_frames !== r.frames_total) {
        why.push(`frames lost: the server counted ${r.status_frames} of the`
                 + ` ${r.frames_total} sent`);
    }
    return why;
}

// Whether a paced step was sustained: { ok, kind, why }
function stepVerdict(r) {
    const b = broken(r, true);
    if (b.length) {
        return { ok: false, kind: 'broken', why: b.join('; ') };
    }
    const fails = r.connect_fail + r.handshake_fail + r.handshake_timeout;
    if (fails || r.dropped || r.server_close || r.closed_unclean) {
        return { ok: false, kind: 'server',
                 why: `${fails} handshakes failed, ${r.dropped + r.server_close}`
                      + ` dropped, ${r.closed_unclean} not closed cleanly` };
    }
    if (r.echo_missing || r.echo_bad) {
        return { ok: false, kind: 'server',
                 why: `${r.echo_missing} echoes missing, ${r.echo_bad} wrong` };
    }
    const share = r.fps / r.offered_fps;
    const serverBusy = r.server_cpu_pct >= 90 || r.skipped_window > 0
                       || r.backlog_growth > r.streams;
    if (share < 0.97 || r.backlog_growth > r.streams) {
        if (serverBusy) {
            return { ok: false, kind: 'server',
                     why: `server saturated: it read ${pct(share)} of the`
                          + ` offered frames, CPU ${r.server_cpu_pct.toFixed(0)} %` };
        }
        return { ok: false, kind: 'generator',
                 why: `the generator sent only ${pct(share)} of the offered`
                      + ` frames (its CPU ${r.self_cpu_pct.toFixed(0)} %,`
                      + ` ${r.late_pct.toFixed(0)} % of frames > 2 ms late),`
                      + ` the server was at ${r.server_cpu_pct.toFixed(0)} %` };
    }
    if (r.lag_p99_ms >= LAG_TARGET_MS) {
        if (serverBusy || r.late_pct < 5) {
            return { ok: false, kind: 'server',
                     why: `lag p99 ${r.lag_p99_ms.toFixed(1)} ms >= ${LAG_TARGET_MS} ms` };
        }
        return { ok: false, kind: 'generator',
                 why: `lag p99 ${r.lag_p99_ms.toFixed(1)} ms while the generator`
                      + ` was behind its schedule (${r.late_pct.toFixed(0)} % of`
                      + ` frames > 2 ms late, its CPU ${r.self_cpu_pct.toFixed(0)} %)` };
    }
    return { ok: true, kind: 'ok',
             why: `sustained: lag p99 ${r.lag_p99_ms.toFixed(2)} ms, server CPU`
                  + ` ${r.server_cpu_pct.toFixed(0)} %` };
}

function pct(x) {
    return (100 * x).toFixed(1) + ' %';
}

function num(x, digits = 0) {
    if (x === undefined || Number.isNaN(x)) {
        return '-';
    }
    return x.toLocaleString('en-US', { minimumFractionDigits: digits,
                                       maximumFractionDigits: digits });
}

function pad(s, n) {
    s = String(s);
    return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function padr(s, n) {
    s = String(s);
    return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function table(head, rows) {
    const w = head.map((h, i) => Math.max(h.length,
        ...rows.map((r) => String(r[i]).length)));
    const fmt = (r) => '  ' + r.map((c, i) => (i === 0 ? padr(c, w[i])
                                                       : pad(c, w[i]))).join('  ');
    return [fmt(head), ...rows.map(fmt)].join('\n');
}

function mark(ok) {
    return ok ? 'PASS' : 'BELOW TARGET';
}

// CPU per frame and memory per stream of nginx, Node and the floor at one
// load, and the ratios; any of them may be missing
function compare(p, n, j, f, indent = '  ') {
    const us = (r) => (r ? num(r.us_per_frame, 2) : '-');
    const kb = (r) => (r ? num(r.kb_per_stream, 2) : '-');
    p(`${indent}CPU per frame, us: nginx ${us(n)}, Node ${us(j)}, floor ${us(f)}`);
    const parts = [];
    if (n && j) {
        parts.push(`nginx/Node ${num(n.us_per_frame / j.us_per_frame, 3)}`
                   + ` (${num(j.us_per_frame / n.us_per_frame, 2)}x less than Node)`);
    }
    if (f && j) {
        parts.push(`floor/Node ${num(f.us_per_frame / j.us_per_frame, 3)}`
                   + ` (${num(j.us_per_frame / f.us_per_frame, 2)}x less: the best`
                   + ' any server can reach here)');
    }
    if (parts.length) {
        p(`${indent}  ${parts.join('; ')}`);
    }
    if (n && f) {
        const over = n.us_per_frame - f.us_per_frame;
        p(`${indent}  nginx above the floor: ${num(over, 2)} us/frame`
          + ` (${num(100 * over / n.us_per_frame, 0)} % of its CPU per frame:`
          + ' its user space and any system calls beyond the reads)');
    }
    if (n || j || f) {
        p(`${indent}memory per stream, KB: nginx ${kb(n)}`
          + `${n && n.shm_kb_per_stream > 0
               ? ` (${num(n.shm_kb_per_stream, 2)} of it the zone's)` : ''},`
          + ` Node ${kb(j)}, floor ${kb(f)}${n && j ? `; Node/nginx`
          + ` ${num(j.kb_per_stream / n.kb_per_stream, 2)}x` : ''}`);
    }
}

// --- subcommands -----------------------------------------------------------

// GET url, then done(parsed body); fail(body) when it is no JSON or done
// throws on it, fail(null) when the request fails
function getJson(url, done, fail) {
    // https: the run's own self-signed certificate
    const get = url.startsWith('https:')
        ? (u, cb) => https.get(u, { rejectUnauthorized: false }, cb) : http.get;
    get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => { body += c; });
        res.on('end', () => {
            try {
                done(JSON.parse(body));
            } catch (e) {
                fail(body);
            }
        });
    }).on('error', () => fail(null));
}

// one line from nginx's /version: "revision R, built B" or the body itself
function version(url) {
    getJson(url, (j) => {
        console.log(`${j.module || 'agentlocator'} ${j.version || ''}`
                    + ` revision ${j.revision}, built ${j.built}`);
    }, (body) => {
        console.log(body === null ? 'unknown (GET /version failed)'
                                  : body.replace(/\s+/g, ' ').slice(0, 200));
    });
}

function statusFrames(server, url) {
    getJson(url, (j) => {
        if (server === 'nginx') {
            const frames = j.calls.reduce((a, c) => a + (c.frames || 0), 0);
            console.log(`${frames} ${j.truncated ? 1 : 0}`);
        } else if (server === 'floor') {
            console.log(`${j.bytes} 0`);
        } else {
            console.log(`${j.frames} 0`);
        }
    }, () => console.log('-1 0'));
}

function cpuBusy() {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/);
    const v = f.slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

function machineBusy(seconds) {
    const a = cpuBusy();
    setTimeout(() => {
        const b = cpuBusy();
        console.log(((b - a) / seconds).toFixed(0));   // USER_HZ = 100
    }, seconds * 1000);
}

function step(file, server, streams) {
    const { runs } = readResults(file);
    const r = runs.filter((x) => x.phase === 'max' && x.server === server
                                 && x.streams === Number(streams)).pop();
    if (!r) {
        console.log('no result');
        process.exit(1);
    }
    const v = stepVerdict(r);
    console.log(v.why);
    process.exit(v.ok ? 0 : 1);
}

function disturbed(file) {
    const { runs } = readResults(file);
    const r = runs[runs.length - 1];
    // a broken run is not measured again: what broke must be reported
    if (r && r.others_pct > OTHERS_LIMIT && !broken(r, r.phase === 'max').length) {
        console.log(r.others_pct.toFixed(0));
        process.exit(0);
    }
    process.exit(1);
}

function report(file, errFile) {
    const { info, runs, superseded } = readResults(file);
    const errLines = fs.existsSync(errFile)
        ? fs.readFileSync(errFile, 'utf8').split('\n').filter(Boolean) : [];
    const problems = [];
    const notes = [];
    const out = [];
    const p = (s = '') => out.push(s);

    for (const r of runs.concat(superseded)) {
        const b = broken(r, r.phase === 'max');
        for (const why of b) {
            problems.push(`${r.phase} ${r.server} (${r.streams} streams): ${why}`);
        }
        if (r.others_pct > OTHERS_LIMIT) {
            notes.push(`${r.phase} ${r.server} (${r.streams} streams): other`
                       + ` work used ${r.others_pct.toFixed(0)} % of a CPU during`
                       + ' the window (kernel softirq or another job)');
        }
    }

    const wire = runs.length ? runs[0].frame_wire_avg : 0;
    p('bench/media: Twilio Media Streams, nginx ' + info.nginx
      + ' + agentlocator module (1 worker) vs Node ' + info.node + ' + ws '
      + info.ws + ' (1 process)'
      + (info.floor ? ' vs the floor (floor.c: reads and discards)' : ''));
    if (info.module) {
        p(`  module: ${info.module}`);
    }
    p(`  ${info.cpus} CPUs, ${info.placement}; media frames of`
      + ` ${num(wire, 0)} bytes on the wire (160-byte mu-law payload);`
      + ` other load before the run: ${info.busy_before} % of one CPU`);
    p('  CPU = utime+stime of the nginx worker / the node process / the floor'
      + ' over the window; RSS = VmRSS; paced frames '
      + (info.tick_us ? `sent in rounds every ${info.tick_us} us`
                      : 'each at its own slot'));
    const busyRuns = runs.filter((r) => r.others_pct > OTHERS_LIMIT).length;
    if (info.busy_before > 20 || busyRuns) {
        p(`  WARNING: the machine was not quiet (${info.busy_before} % of a CPU`
          + ` busy before the run, ${busyRuns} of ${runs.length} windows with`
          + ' other work > 15 %): the figures are skewed, see the notes');
    }

    const byPhase = (ph) => runs.filter((r) => r.phase === ph);
    // the lowest CPU per frame among the rounds that kept up, if any did
    const keptUp = (r) => r.fps / r.offered_fps >= 0.97
                          && r.backlog_growth <= r.streams
                          && !(r.others_pct > OTHERS_LIMIT);
    const best = (list, server) => {
        const all = list.filter((r) => r.server === server);
        const ok = all.filter(keptUp);
        return (ok.length ? ok : all)
            .sort((a, b) => a.us_per_frame - b.us_per_frame)[0];
    };

    let cpuRatio;
    let memRatio;
    let floorRatio;

    // 1. paced
    const paced = byPhase('paced');
    if (paced.length) {
        p();
        p(`1. paced: ${info.streams} streams x ${1000 / FRAME_MS} frames/s,`
          + ` ${info.duration} s window after a ${info.warmup} s warm-up,`
          + ` ${info.rounds} round(s), nginx and Node alternating`
          + (info.floor ? ', the floor last in odd rounds, first in even ones' : ''));
        const rows = paced.map((r) => [
            `${r.server} r${r.round}`,
            num(r.fps), pct(r.fps / r.offered_fps),
            num(r.us_per_frame, 2), num(r.server_cpu_pct, 1),
            num(r.server_rss_idle_kb / 1024, 1), num(r.server_rss_we_kb / 1024, 1),
            num(r.kb_per_stream, 2), num(r.shm_kb_per_stream, 2),
            num(r.ramp_s, 1), num(r.self_cpu_pct, 0), num(r.late_pct, 1)]);
        p(table(['server', 'frames/s', 'of offered', 'us CPU/frame', 'CPU %',
                 'RSS idle MB', `RSS ${info.streams} MB`, 'KB/stream',
                 'of it shm', 'ramp s', 'gen CPU %', 'late %'], rows));
        const n = best(paced, 'nginx');
        const j = best(paced, 'node');
        const f = best(paced, 'floor');
        if (n || j || f) {
            p('  best rounds (lowest CPU per frame):');
            compare(p, n, j, f, '    ');
        }
        if (n && j) {
            cpuRatio = j.us_per_frame / n.us_per_frame;
            memRatio = j.kb_per_stream / n.kb_per_stream;
            if (f) {
                floorRatio = j.us_per_frame / f.us_per_frame;
            }
            for (const r of [n, j, f].filter(Boolean)) {
                if (r.fps / r.offered_fps < 0.97 || r.backlog_growth > r.streams) {
                    p(`  note: ${r.server} did not keep up: it read`
                      + ` ${pct(r.fps / r.offered_fps)} of the offered frames,`
                      + ` its backlog grew by ${num(r.backlog_growth)} frames;`
                      + ' its CPU per frame is measured at saturation');
                }
            }
        }
    }

    // 2. flood
    const flood = byPhase('flood');
    if (flood.length) {
        p();
        p(`2. flood: ${info.flood_streams} streams sending as fast as the`
          + ` sockets take frames, ${info.flood_duration} s`);
        p(table(['server', 'frames/s', 'us CPU/frame', 'CPU %', 'MB/s in',
                 'gen CPU %'],
                flood.map((r) => [r.server, num(r.fps), num(r.us_per_frame, 2),
                                  num(r.server_cpu_pct, 1),
                                  num(r.fps * r.frame_wire_avg / 1e6, 1),
                                  num(r.self_cpu_pct, 0)])));
        const n = flood.find((r) => r.server === 'nginx');
        const j = flood.find((r) => r.server === 'node');
        const f = flood.find((r) => r.server === 'floor');
        if (n && j) {
            p(`  nginx/Node frames/s: ${num(n.fps / j.fps, 2)}x`);
        }
        compare(p, n, j, f);
        if (f && f.server_cpu_pct < 90) {
            p(`  (the floor was not saturated, CPU ${num(f.server_cpu_pct, 0)} %:`
              + ' the generator was the limit, and a server that sleeps'
              + ' between reads pays more per frame than a saturated one)');
        }
    }

    // 3. echo
    const echo = byPhase('echo');
    if (echo.length) {
        p();
        p(`3. echo: ${info.echo_streams} paced streams, every media frame echoed`
          + ` back; round trip of each frame over ${info.echo_duration} s`
          + (info.floor ? ' (nginx and Node: the floor cannot echo)' : ''));
        p(table(['server', 'lag p50 ms', 'p99 ms', 'p99.9 ms', 'max ms',
                 'read p99 ms', 'echoed/sent', 'us CPU/frame', 'CPU %'],
                echo.map((r) => [r.server, num(r.lag_p50_ms, 2),
                                 num(r.lag_p99_ms, 2), num(r.lag_p999_ms, 2),
                                 num(r.lag_max_ms, 2), num(r.readlag_p99_ms, 2),
                                 `${r.echoed_total}/${r.frames_total}`,
                                 num(r.us_per_frame, 2),
                                 num(r.server_cpu_pct, 1)])));
    }

    // 5. tls (printed after "max", numbered as the phase list in README.md)
    const tlsRuns = byPhase('tls');
    let tlsBest;
    const tlsSection = [];
    if (tlsRuns.length) {
        const q = (x = '') => tlsSection.push(x);
        q();
        q(`5. tls: ${info.tls_streams} paced streams over TLS (wss://; one`
          + ' self-signed P-256 certificate), x 50 frames/s,'
          + ` ${info.tls_duration} s window after a ${info.warmup} s warm-up,`
          + ` ${info.tls_rounds} round(s)`
          + (info.nginx_tls ? `; nginx's server block also has: ${info.nginx_tls}` : ''));
        q(table(['server', 'frames/s', 'of offered', 'us CPU/frame', 'CPU %',
                 'RSS idle MB', `RSS ${info.tls_streams} MB`, 'KB/stream',
                 'of it shm', 'ramp s', 'gen CPU %', 'late %'],
                tlsRuns.map((r) => [
                    `${r.server} r${r.round}`,
                    num(r.fps), pct(r.fps / r.offered_fps),
                    num(r.us_per_frame, 2), num(r.server_cpu_pct, 1),
                    num(r.server_rss_idle_kb / 1024, 1),
                    num(r.server_rss_we_kb / 1024, 1),
                    num(r.kb_per_stream, 2), num(r.shm_kb_per_stream, 2),
                    num(r.ramp_s, 1), num(r.self_cpu_pct, 0),
                    num(r.late_pct, 1)])));
        const n = best(tlsRuns, 'nginx');
        const j = best(tlsRuns, 'node');
        const f = best(tlsRuns, 'floor');
        tlsBest = { n, j, f };
        q('  best rounds (lowest CPU per frame):');
        compare(q, n, j, f, '    ');
        const pn = best(byPhase('paced'), 'nginx');
        if (n && pn) {
            q(`  nginx over TLS against plain ws:// in this run (${info.tls_streams}`
              + ` and ${info.streams} streams): ${num(n.kb_per_stream, 2)} against`
              + ` ${num(pn.kb_per_stream, 2)} KB/stream, ${num(n.us_per_frame, 2)}`
              + ` against ${num(pn.us_per_frame, 2)} us/frame`);
        }
        for (const r of [n, j, f].filter(Boolean)) {
            if (!keptUp(r)) {
                q(`  note: ${r.server} did not keep up or was disturbed: it read`
                  + ` ${pct(r.fps / r.offered_fps)} of the offered frames`);
            }
        }
    }

    // 4. max
    const max = byPhase('max');
    const maxSustained = {};
    const maxLimit = {};
    if (max.length) {
        p();
        p(`4. most paced streams on one worker / process: steps`
          + ` ${info.max_steps}, ${info.max_duration} s each, 1 stream in`
          + ` ${info.probe_every} echoed for the lag; stops at the first step`
          + ' not sustained'
          + (info.floor ? '; the floor at the steps both servers ran, no echo' : ''));
        const rows = max.map((r) => {
            if (r.server === 'floor') {
                return [r.server, r.streams, num(r.fps),
                        pct(r.fps / r.offered_fps), num(r.server_cpu_pct, 0),
                        num(r.us_per_frame, 2),
                        num(r.server_rss_we_kb / 1024, 1),
                        num(r.kb_per_stream, 2), '-', '-', '-',
                        num(r.self_cpu_pct, 0), 'reads only'];
            }
            const v = stepVerdict(r);
            if (v.ok) {
                maxSustained[r.server] = Math.max(maxSustained[r.server] || 0,
                                                  r.streams);
            } else {
                maxLimit[r.server] = { r, v };
            }
            return [r.server, r.streams, num(r.fps), pct(r.fps / r.offered_fps),
                    num(r.server_cpu_pct, 0), num(r.us_per_frame, 2),
                    num(r.server_rss_we_kb / 1024, 1), num(r.kb_per_stream, 2),
                    num(r.lag_p50_ms, 2), num(r.lag_p99_ms, 2),
                    num(r.lag_max_ms, 1), num(r.self_cpu_pct, 0),
                    v.ok ? 'sustained' : v.kind === 'generator'
                        ? 'generator-bound' : 'NOT sustained'];
        });
        p(table(['server', 'streams', 'frames/s', 'of offered', 'CPU %',
                 'us/frame', 'RSS MB', 'KB/stream', 'p50 ms', 'p99 ms',
                 'max ms', 'gen CPU %', 'result'], rows));
        for (const s of ['nginx', 'node']) {
            const ok = max.filter((r) => r.server === s && stepVerdict(r).ok);
            const last = ok[ok.length - 1];
            let line = `  ${s}: ${maxSustained[s] ? 'sustained ' + maxSustained[s]
                                                : 'sustained no step'}`;
            if (maxLimit[s]) {
                line += `; at ${maxLimit[s].r.streams}: ${maxLimit[s].v.why}`;
            } else if (last) {
                line += ' (every step)';
            }
            p(line);
            if (last && last.us_per_frame > 0) {
                p(`    CPU-bound estimate from the ${last.streams}-stream step:`
                  + ` ${num(1e6 / (last.us_per_frame * 1000 / FRAME_MS))}`
                  + ' streams per CPU core');
            }
        }
    }

    for (const l of tlsSection) {
        p(l);
    }

    // CPU per frame at the same load with neither server saturated: the
    // paced phase's Node may be at 100 %, which batches its reads and
    // understates its cost per frame
    const calm = (r) => r && r.server_cpu_pct < 90 && r.fps / r.offered_fps >= 0.97
                        && r.backlog_growth <= r.streams
                        && !(r.others_pct > OTHERS_LIMIT);
    let fair;
    for (const n of max.filter((r) => r.server === 'nginx')) {
        const j = max.find((r) => r.server === 'node' && r.streams === n.streams);
        if (calm(n) && calm(j)) {
            const f = max.find((r) => r.server === 'floor'
                                      && r.streams === n.streams);
            fair = { streams: n.streams, ratio: j.us_per_frame / n.us_per_frame,
                     n, j, f: calm(f) ? f : undefined };
        }
    }

    // targets
    p();
    p('targets');
    if (cpuRatio !== undefined) {
        p(`  CPU per frame, Node/nginx:   ${num(cpuRatio, 2)}x (target >= ${CPU_TARGET}x):`
          + ` ${mark(cpuRatio >= CPU_TARGET)}`);
        p(`  memory per stream, Node/nginx: ${num(memRatio, 2)}x (target >= ${MEM_TARGET}x):`
          + ` ${mark(memRatio >= MEM_TARGET)}`);
        const pn = best(paced, 'nginx');
        const pj = best(paced, 'node');
        if (pn && pj && pn.shm_kb_per_stream > 0) {
            p(`    nginx's ${num(pn.kb_per_stream, 2)} KB/stream: ${num(pn.own_kb_per_stream, 2)}`
              + ` KB its own, ${num(pn.shm_kb_per_stream, 2)} KB pages of the zone`
              + ` (agentlocator_zone ${info.zone}: the calls' entries and the pages of`
              + ' the index they hash into, shared by all workers); the worker\'s own'
              + ` memory alone: Node/nginx ${num(pj.kb_per_stream / pn.own_kb_per_stream, 2)}x`);
        }
        if (floorRatio !== undefined) {
            p(`  CPU per frame, Node/floor:   ${num(floorRatio, 2)}x: the most any`
              + ' server can reach against Node on this machine at this load;'
              + ` ${CPU_TARGET}x is ${floorRatio >= CPU_TARGET ? '' : 'NOT '}reachable`);
            const nf = cpuRatio !== undefined ? floorRatio / cpuRatio : undefined;
            if (nf !== undefined) {
                p(`  CPU per frame, nginx/floor:  ${num(nf, 2)}x (target <= ${FLOOR_TARGET}x,`
                  + ` a later issue's): ${mark(nf <= FLOOR_TARGET)}`);
            }
        }
        if (pj && pn && !calm(pj)) {
            p(`    (Node was at its limit in the paced phase: CPU`
              + ` ${num(pj.server_cpu_pct, 0)} %, ${pct(pj.fps / pj.offered_fps)}`
              + ' of the offered frames read; a server behind its load reads'
              + ' several frames per read, so its CPU per frame is understated)');
        }
        if (fair) {
            p(`    at ${fair.streams} streams, neither saturated (CPU`
              + ` ${num(fair.n.server_cpu_pct, 0)} % / ${num(fair.j.server_cpu_pct, 0)} %):`
              + ` ${num(fair.n.us_per_frame, 2)} vs ${num(fair.j.us_per_frame, 2)} us/frame,`
              + ` Node/nginx ${num(fair.ratio, 2)}x`);
            if (fair.f) {
                p(`    the floor at ${fair.streams} streams: ${num(fair.f.us_per_frame, 2)}`
                  + ` us/frame, Node/floor ${num(fair.j.us_per_frame / fair.f.us_per_frame, 2)}x`
                  + ` (${CPU_TARGET}x is ${fair.j.us_per_frame / fair.f.us_per_frame >= CPU_TARGET
                                           ? '' : 'NOT '}reachable at this load);`
                  + ` nginx above the floor ${num(fair.n.us_per_frame - fair.f.us_per_frame, 2)}`
                  + ' us/frame');
            }
        } else if (max.length) {
            p('    (no "max" step where both servers were below 90 % CPU, kept up'
              + ' and undisturbed, for a comparison at equal unsaturated load)');
        }
    } else {
        p('  CPU and memory ratios: not measured (phase "paced" not run)');
    }
    if (tlsBest && tlsBest.n) {
        const { n, j, f } = tlsBest;
        p(`  over TLS (${info.tls_streams} streams):`);
        p(`    memory per idle stream, nginx: ${num(n.kb_per_stream, 2)} KB`
          + ` (target <= ${TLS_MEM_KB} KB): ${mark(n.kb_per_stream <= TLS_MEM_KB)}`);
        if (j) {
            const m = j.kb_per_stream / n.kb_per_stream;
            p(`    memory per stream, Node/nginx: ${num(m, 2)}x`
              + ` (target >= ${TLS_MEM_TARGET}x): ${mark(m >= TLS_MEM_TARGET)}`);
        }
        if (f) {
            const c = n.us_per_frame / f.us_per_frame;
            p(`    CPU per frame, nginx/floor: ${num(c, 2)}x`
              + ` (target <= ${TLS_FLOOR_TARGET}x): ${mark(c <= TLS_FLOOR_TARGET)}`);
        }
        if (j) {
            p(`    CPU per frame, Node/nginx: ${num(j.us_per_frame / n.us_per_frame, 2)}x`);
        }
    }
    const step2k = max.find((r) => r.server === 'nginx'
                                   && r.streams === STREAMS_TARGET);
    if (max.some((r) => r.server === 'nginx')) {
        const m = maxSustained.nginx || 0;
        const lim = maxLimit.nginx;
        let verdict = mark(m >= STREAMS_TARGET);
        if (m < STREAMS_TARGET && lim && lim.v.kind === 'generator') {
            verdict = 'NOT MEASURED (the load generator could not deliver the load)';
        }
        p(`  paced streams on one nginx worker with lag p99 < ${LAG_TARGET_MS} ms:`
          + ` ${m}${step2k ? ` (p99 at ${STREAMS_TARGET}: ${num(step2k.lag_p99_ms, 2)} ms)` : ''}`
          + ` (target >= ${STREAMS_TARGET}): ${verdict}`);
    } else {
        p('  streams per worker: not measured (phase "max" not run)');
    }

    p();
    const total = runs.reduce((a, r) => a + r.streams, 0);
    const hsFails = runs.reduce((a, r) => a + r.connect_fail + r.handshake_fail
                                         + r.handshake_timeout, 0);
    const sent = runs.reduce((a, r) => a + r.frames_total, 0);
    p(`checks: ${runs.length} runs, ${num(total)} streams opened,`
      + ` ${hsFails} handshake failures, ${num(sent)} media frames sent,`
      + ` every count compared with the server's own`);
    if (errLines.length) {
        p(`nginx error.log: ${errLines.length} line(s) above [warn] or unexpected warnings:`);
        for (const l of errLines.slice(0, 20)) {
            p('  ' + l);
        }
    } else {
        p('nginx error.log: no [error], [crit], [alert] or [emerg] lines,'
          + ' no unexpected [warn]');
    }
    for (const n of notes) {
        p('note: ' + n);
    }
    for (const r of superseded) {
        p(`note: ${r.phase} ${r.server} (${r.streams} streams) was measured`
          + ` again: other work used ${r.others_pct.toFixed(0)} % of a CPU`
          + ' during its first window');
    }
    if (problems.length) {
        p();
        p('NOT VALID: ' + problems.length + ' problem(s):');
        for (const x of problems) {
            p('  ' + x);
        }
    }

    console.log(out.join('\n'));
    process.exit(problems.length ? 1 : 0);
}

const [cmd, ...args] = process.argv.slice(2);
switch (cmd) {
case 'status-frames': statusFrames(args[0], args[1]); break;
case 'machine-busy': machineBusy(Number(args[0] || 1)); break;
case 'step': step(args[0], args[1], args[2]); break;
case 'version': version(args[0]); break;
case 'disturbed': disturbed(args[0]); break;
case 'report': report(args[0], args[1]); break;
default:
    console.error('usage: report.js status-frames|machine-busy|step|disturbed|report ...');
    process.exit(2);
}
