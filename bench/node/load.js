// An independent voice load client for bench/run, in Node.js with the `ws` package: N sessions
// each send start_session, then replay the same pre-encoded Opus frames as olympus-voice load
// (written by `olympus-voice load --frames-out`) at 20 ms pace, count frames sent more than one
// frame late, and print one NODE_JSON line. Ends by itself after the duration.
// Usage: node load.js <url> <token> <frames-file> <sessions> <seconds>
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [url, token, framesPath, sessionsArg, secondsArg] = process.argv.slice(2);
const sessions = Number(sessionsArg);
const seconds = Number(secondsArg);
const FRAME_MS = 20;

// <u16 little-endian length><bytes> records, as olympus-voice load writes them.
const raw = fs.readFileSync(framesPath);
const frames = [];
for (let at = 0; at + 2 <= raw.length;) {
  const size = raw.readUInt16LE(at);
  frames.push(raw.subarray(at + 2, at + 2 + size));
  at += 2 + size;
}

const stats = { started: 0, sent: 0, late: 0, lost: 0, replyFrames: 0 };
const sockets = [];
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function runSession() {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  sockets.push(ws);
  let timer = null;
  let active = false;
  ws.on('open', () => {
    ws._socket.setNoDelay(true);
    ws.send(JSON.stringify({
      type: 'start_session', id: 'node-start', location_id: 'loc-demo', channel: 'drive_thru',
      access_token: token,
      audio: { encoding: 'opus', sample_rate: 48000, channels: 1, frame_ms: FRAME_MS },
    }));
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      stats.replyFrames++;
      return;
    }
    const msg = JSON.parse(data.toString());
    if (msg.type === 'session_started' && !active) {
      active = true;
      stats.started++;
      const first = nowMs();
      let next = 0;
      // Send every frame that is due, then sleep until the next one is.
      const tick = () => {
        const now = nowMs();
        while (first + next * FRAME_MS <= now) {
          const due = first + next * FRAME_MS;
          ws.send(frames[next % frames.length]);
          stats.sent++;
          if (nowMs() - due > FRAME_MS) stats.late++;
          next++;
        }
        timer = setTimeout(tick, Math.max(0, first + next * FRAME_MS - nowMs()));
      };
      tick();
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', timestamp: msg.timestamp }));
    }
  });
  ws.on('close', () => {
    if (timer) clearTimeout(timer);
    if (active && !stopping) stats.lost++;
  });
  ws.on('error', () => {});
}

let stopping = false;
const startCpu = process.cpuUsage();
let windowCpu = null;
let windowStart = 0;
for (let i = 0; i < sessions; i++) setTimeout(runSession, (i * 5) % 5000);

// The measuring window opens 6 s in (after the ramp) and closes at the end.
setTimeout(() => { windowCpu = process.cpuUsage(); windowStart = nowMs(); stats.sent0 = stats.sent; stats.late0 = stats.late; },
  Math.min(6000, seconds * 500));
setTimeout(() => {
  stopping = true;
  const cpu = process.cpuUsage(windowCpu || startCpu);
  const windowS = (nowMs() - windowStart) / 1000;
  const held = sockets.filter((s) => s.readyState === WebSocket.OPEN).length;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const rssKib = Math.round(process.memoryUsage().rss / 1024);
  console.log('NODE_JSON ' + JSON.stringify({
    sessions, held, started: stats.started, frames_sent: stats.sent, frames_late: stats.late,
    window_late: stats.late - (stats.late0 || 0), lost: stats.lost, reply_frames: stats.replyFrames,
    cpu_s: cpuS, window_s: windowS, cpu_ms_per_session_s: held ? cpuS * 1000 / (held * windowS) : 0,
    rss_kib: rssKib,
  }));
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}, seconds * 1000);
