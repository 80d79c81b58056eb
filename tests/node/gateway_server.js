// An independent gateway server for tests, written from section 2 of the realtime protocol
// document only: auth three ways, heartbeat with pong checking, subscribe/unsubscribe, events
// with ids, and generic requests. It listens on 127.0.0.1 with an ephemeral port and prints
// "PORT <n>" on stdout. Commands on stdin, one per line:
//   drop   end every connection abruptly (no close frame)
//   stats  print "STATS <json>" with what the server saw
// Options: --ping-ms <n> (server ping period), --pong-timeout-ms <n>, --event-ms <n>,
// --replay <n> (a new subscription first gets the channel's last n events again, ids unchanged,
// as a server that avoids gaps across a reconnect would).
// Requests of type "test.bad_frames" make it answer with malformed and oversize frames.
'use strict';

const { WebSocketServer } = require('ws');
const readline = require('readline');

const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}
const pingMs = option('--ping-ms', 30000);
const pongTimeoutMs = option('--pong-timeout-ms', 10000);
const eventMs = option('--event-ms', 50);
const replay = option('--replay', 0);
const MAX_BYTES = 65536;
const history = new Map();  // channel -> last events sent
const MAX_SUBSCRIPTIONS = 50;

const stats = { connections: 0, auth_ok: 0, auth_failed: 0, auth_ways: {}, pongs_echoed: 0,
  pongs_wrong: 0, client_pings: 0, subscribes: 0, unsubscribes: 0, requests: 0,
  request_ids: [] };

// A token is valid when it is non-empty and not one the tests name as bad.
function tokenValid(token) {
  return typeof token === 'string' && token.length > 0 && !token.startsWith('bad');
}

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_BYTES,
  perMessageDeflate: false });
let nextSub = 1;
let nextEvent = 1;

server.on('connection', (ws, req) => {
  stats.connections++;
  const url = new URL(req.url, 'http://localhost');
  const header = req.headers['authorization'] || '';
  const state = { authed: false, subs: new Map(), pingStamp: null, pongTimer: null };

  const send = (msg) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg)); };
  const authOk = (way) => {
    state.authed = true;
    stats.auth_ok++;
    stats.auth_ways[way] = (stats.auth_ways[way] || 0) + 1;
    const expires = new Date(Date.now() + 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    send({ type: 'auth_success', user_id: 'user-node', tenant_id: 'tenant-node',
      permissions: ['orders.read'], expires_at: expires });
  };
  const authFail = () => {
    stats.auth_failed++;
    send({ type: 'auth_error', code: 'invalid_token', message: 'Access token is expired or invalid' });
    ws.close(1008, 'invalid token');
  };

  // Token in the upgrade request: query parameter or header.
  if (url.searchParams.has('token')) {
    if (tokenValid(url.searchParams.get('token'))) authOk('query'); else authFail();
  } else if (header.startsWith('Bearer ')) {
    if (tokenValid(header.slice(7))) authOk('header'); else authFail();
  }

  // Heartbeat: ping, and close 4000 when the pong does not come back in time.
  const pinger = setInterval(() => {
    state.pingStamp = new Date().toISOString();
    send({ type: 'ping', timestamp: state.pingStamp });
    clearTimeout(state.pongTimer);
    state.pongTimer = setTimeout(() => ws.close(4000, 'no pong'), pongTimeoutMs);
  }, pingMs);

  // Events for every subscription.
  const eventer = setInterval(() => {
    for (const [id, sub] of state.subs) {
      const event = { type: 'event', channel: sub.channel, subscription_id: id,
        event: 'order.created', id: 'evt-' + (nextEvent++), data: { order_id: 'order-1' },
        timestamp: new Date().toISOString() };
      send(event);
      const past = history.get(sub.channel) || [];
      past.push(event);
      if (past.length > 20) past.shift();
      history.set(sub.channel, past);
    }
  }, eventMs);

  ws.on('message', (raw, isBinary) => {
    if (isBinary) return;
    let msg;
    try { msg = JSON.parse(raw.toString()); } catch (e) {
      send({ type: 'error', code: 'invalid_message', message: 'not JSON' });
      return;
    }
    if (msg.type === 'auth') {
      if (tokenValid(msg.token)) authOk('first_message'); else authFail();
      return;
    }
    if (msg.type === 'pong') {
      if (msg.timestamp === state.pingStamp) stats.pongs_echoed++; else stats.pongs_wrong++;
      clearTimeout(state.pongTimer);
      return;
    }
    if (msg.type === 'ping') {
      stats.client_pings++;
      send({ type: 'pong', timestamp: new Date().toISOString() });
      return;
    }
    if (!state.authed) {
      send({ type: 'error', id: msg.id, code: 'unauthorized', message: 'authenticate first' });
      return;
    }
    if (msg.type === 'subscribe') {
      stats.subscribes++;
      if (state.subs.size >= MAX_SUBSCRIPTIONS) {
        send({ type: 'response', id: msg.id, success: false, error: 'subscription_limit',
          message: 'too many subscriptions' });
        return;
      }
      const id = 'sub-' + (nextSub++);
      state.subs.set(id, { channel: msg.channel, params: msg.params || {} });
      send({ type: 'response', id: msg.id, success: true, subscription_id: id,
        channel: msg.channel, params: msg.params || {} });
      for (const event of (history.get(msg.channel) || []).slice(-replay)) {
        if (replay > 0) send(Object.assign({}, event, { subscription_id: id }));
      }
    } else if (msg.type === 'unsubscribe') {
      stats.unsubscribes++;
      state.subs.delete(msg.subscription_id);
      // The documented reply carries no id; ours echoes it when present.
      send({ type: 'response', id: msg.id, success: true, subscription_id: msg.subscription_id,
        message: 'unsubscribed' });
    } else if (msg.type === 'test.bad_frames') {
      ws.send('{not json');
      ws.send(Buffer.from([1, 2, 3]), { binary: true });
      send({ type: 'brand.new.type' });
      send({ type: 'response', id: 'nobody-asked', success: true });
      send({ type: 42 });
      send({ type: 'event', channel: 'orders', subscription_id: 7, id: 9, event: [] });
      ws.send(JSON.stringify({ type: 'event', channel: 'orders', data: 'x'.repeat(70000) }));
      send({ type: 'response', id: msg.id, success: true });
    } else {
      stats.requests++;
      stats.request_ids.push(msg.id);
      send({ type: 'response', id: msg.id, success: true, echo: msg.type });
    }
  });

  ws.on('close', () => {
    clearInterval(pinger);
    clearInterval(eventer);
    clearTimeout(state.pongTimer);
  });
});

server.on('listening', () => {
  process.stdout.write('PORT ' + server.address().port + '\n');
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const command = line.trim();
  if (command === 'drop') {
    for (const client of server.clients) client.terminate();
    process.stdout.write('DROPPED\n');
  } else if (command === 'stats') {
    process.stdout.write('STATS ' + JSON.stringify(stats) + '\n');
  }
}).on('close', () => process.exit(0));
