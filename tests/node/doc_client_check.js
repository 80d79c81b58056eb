'use strict';
// Drives the emulator with clients that know only the public protocol. The main flow runs one
// of two clients with the same shape: the JavaScript example client published in the Olympus
// docs (`--client doc`, loaded unmodified from the doc page at run time), or ProtocolClient
// below, written from the protocol document alone (`--client protocol`). Plain `ws`
// connections cover the other auth ways. Prints one "PASS name" or "FAIL name: why" line per
// check; exits non-zero when any check fails.
//
// usage: node doc_client_check.js --url URL --idle-url URL --token JWT
//        --client protocol | --client doc --spec FILE
//        (for wss, start node with NODE_EXTRA_CA_CERTS pointing at the emulator's certificate)

const fs = require('fs');
const WebSocket = require('ws');

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['url', 'idle-url', 'token', 'client']) {
    if (!args[key]) throw new Error(`missing --${key}`);
  }
  if (args.client === 'doc' && !args.spec) throw new Error('--client doc needs --spec');
  if (args.client !== 'doc' && args.client !== 'protocol') throw new Error('unknown --client');
  return args;
}

// A client written from the protocol document (sections 2.1-2.6): query-parameter auth, pong
// with the ping's timestamp, subscribe requests correlated by id. Same interface as the
// published example, so that every check below runs against either.
class ProtocolClient {
  constructor({ url, token, onEvent }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent || (() => {});
    this.pending = new Map();
    this.nextId = 1;
  }

  connect() {
    this.ws = new WebSocket(`${this.url}?token=${encodeURIComponent(this.token)}`);
    this.ws.on('message', (data) => this.dispatch(JSON.parse(String(data))));
    return new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
  }

  dispatch(message) {
    if (message.type === 'ping') {
      this.ws.send(JSON.stringify({ type: 'pong', timestamp: message.timestamp }));
    } else if (message.type === 'event') {
      this.onEvent(message);
    } else if (message.type === 'response' && this.pending.has(message.id)) {
      this.pending.get(message.id)(message);
      this.pending.delete(message.id);
    }
  }

  subscribe(channel, params = {}) {
    const id = 'req-' + this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (response) => response.success
        ? resolve(response.subscription_id) : reject(new Error(response.error)));
      this.ws.send(JSON.stringify({ type: 'subscribe', id, channel, params }));
    });
  }

  close() { this.ws.close(); }
}

// The published example, taken from the documentation page between its heading and its usage.
function loadDocClient(specFile) {
  const page = fs.readFileSync(specFile, 'utf8');
  const start = page.indexOf('class OlympusWebSocket', page.indexOf('JavaScript Client Example'));
  const end = page.indexOf('// Usage', start);
  if (start < 0 || end < 0) throw new Error('example client not found in ' + specFile);
  return new Function('WebSocket', page.slice(start, end) + '\nreturn OlympusWebSocket;')(WebSocket);
}

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const closed = (ws) => new Promise((resolve) => ws.once('close', (code) => resolve(code)));
function withTimeout(promise, ms, what) {
  return Promise.race([promise, wait(ms).then(() => { throw new Error(what + ' timed out'); })]);
}
function nextMessage(ws, predicate, ms = 3000) {
  return withTimeout(new Promise((resolve) => {
    const onMessage = (data) => {
      const message = JSON.parse(String(data));
      if (predicate(message)) { ws.off('message', onMessage); resolve(message); }
    };
    ws.on('message', onMessage);
  }), ms, 'waiting for a message');
}
function opened(ws) {
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 3000, 'connecting');
}

const results = [];
async function check(name, body) {
  try {
    await body();
    results.push(true);
    console.log('PASS ' + name);
  } catch (error) {
    results.push(false);
    console.log('FAIL ' + name + ': ' + (error && error.message ? error.message : error));
  }
}
function expect(condition, why) { if (!condition) throw new Error(why); }

async function main() {
  const args = parseArgs(process.argv);
  const OlympusWebSocket = args.client === 'doc' ? loadDocClient(args.spec) : ProtocolClient;
  const url = args.url;
  const token = args.token;

  // The main client: query-parameter auth, subscribe, events, heartbeat.
  const events = [];
  const client = new OlympusWebSocket({ url, token, onEvent: (e) => events.push(e) });
  await check('client connects with ?token=', () => withTimeout(client.connect(), 3000, 'connect'));
  const closeCodes = [];
  if (client.ws) client.ws.on('close', (code) => closeCodes.push(code));

  await check('client subscribes and receives events', async () => {
    const subId = await withTimeout(client.subscribe('orders', { location_id: 'loc-xyz789' }), 3000, 'subscribe');
    expect(typeof subId === 'string' && subId.length > 0, 'no subscription id');
    for (let i = 0; i < 50 && events.length < 3; i++) await wait(50);
    expect(events.length >= 3, `only ${events.length} events`);
    const ids = new Set(events.map((e) => e.id));
    expect(ids.size === events.length, 'duplicate event ids');
    expect(events.every((e) => e.channel === 'orders' && e.data.location_id === 'loc-xyz789'),
      'event for the wrong channel or location');
  });

  await check('client keeps the heartbeat going', async () => {
    await wait(1500);  // many server ping periods and pong timeouts
    expect(client.ws.readyState === WebSocket.OPEN, 'connection closed, codes ' + closeCodes);
  });

  await check('client gets subscription_limit on the 51st subscribe', async () => {
    for (let i = 1; i < 50; i++) {
      await withTimeout(client.subscribe('tables', { location_id: 'loc-' + i }), 3000, 'subscribe ' + i);
    }
    let error = null;
    try {
      await withTimeout(client.subscribe('tables', {}), 3000, 'subscribe 51');
    } catch (e) { error = e; }
    expect(error && error.message === 'subscription_limit', 'got ' + (error && error.message));
  });

  await check('client frame over 64 KB is closed with 1009', async () => {
    const code = closed(client.ws);
    client.ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(65536) }));
    expect(await withTimeout(code, 3000, 'close') === 1009, 'wrong close code');
  });

  await check('client 11th connection gets connection_limit and 1008', async () => {
    const held = [];
    try {
      for (let i = 0; i < 10; i++) {
        const c = new OlympusWebSocket({ url, token });
        await withTimeout(c.connect(), 3000, 'connect ' + i);
        held.push(c);
      }
      // connect() creates the socket synchronously; listen before the first frame can arrive.
      const eleventh = new OlympusWebSocket({ url, token });
      const connecting = eleventh.connect();
      const errors = [];
      eleventh.ws.on('message', (data) => errors.push(JSON.parse(String(data))));
      const code = closed(eleventh.ws);
      await withTimeout(connecting, 3000, 'connect 11');
      expect(await withTimeout(code, 3000, 'close') === 1008, 'wrong close code');
      expect(errors.some((m) => m.type === 'error' && m.code === 'connection_limit'),
        'no connection_limit error');
    } finally {
      await Promise.all(held.map((c) => { const done = closed(c.ws); c.close(); return done; }));
    }
  });

  await check('client is closed with 4002 when idle', async () => {
    const idle = new OlympusWebSocket({ url: args['idle-url'], token });
    await withTimeout(idle.connect(), 3000, 'connect');
    expect(await withTimeout(closed(idle.ws), 5000, 'idle close') === 4002, 'wrong close code');
  });

  // Written from the protocol document: the two other auth ways, and the protocol's answers.
  await check('header auth gets auth_success', async () => {
    const ws = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
    const success = nextMessage(ws, (m) => m.type === 'auth_success');
    await opened(ws);
    expect((await success).user_id === 'user-dev', 'wrong user');
    ws.close();
  });

  await check('first-message auth, pong echo and client ping', async () => {
    const ws = new WebSocket(url);
    await opened(ws);
    ws.send(JSON.stringify({ type: 'auth', token }));
    await nextMessage(ws, (m) => m.type === 'auth_success');
    const ping = await nextMessage(ws, (m) => m.type === 'ping');
    ws.send(JSON.stringify({ type: 'pong', timestamp: ping.timestamp }));
    ws.send(JSON.stringify({ type: 'ping', timestamp: 'client-1' }));
    const pong = await nextMessage(ws, (m) => m.type === 'pong');
    expect(pong.timestamp === 'client-1', 'pong did not echo');
    ws.close();
  });

  await check('bad token gets auth_error then 1008', async () => {
    const ws = new WebSocket(url);
    await opened(ws);
    const code = closed(ws);
    ws.send(JSON.stringify({ type: 'auth', token: 'not-a-token' }));
    const error = await nextMessage(ws, (m) => m.type === 'auth_error');
    expect(error.code === 'invalid_token', 'wrong code ' + error.code);
    expect(await withTimeout(code, 3000, 'close') === 1008, 'wrong close code');
  });

  await check('text frame that is not UTF-8 is closed with 1007', async () => {
    const ws = new WebSocket(url + '?token=' + token);
    await opened(ws);
    const code = closed(ws);
    ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    expect(await withTimeout(code, 3000, 'close') === 1007, 'wrong close code');
  });

  client.close();
  const failed = results.filter((ok) => !ok).length;
  console.log(`node peer: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((error) => { console.log('FAIL harness: ' + error.message); process.exit(2); });
