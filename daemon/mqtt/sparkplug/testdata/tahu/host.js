// SPDX-License-Identifier: Apache-2.0

// A Sparkplug B host application for fieldgate's interop test, built on
// Eclipse Tahu's JavaScript payload library (sparkplug-payload) and the
// MQTT client Tahu's sparkplug-client is built on (mqtt). It knows nothing
// of fieldgate.
//
// node host.js BROKER_URL HOST_ID
//
// It connects with its STATE (offline) as the will, subscribes to
// spBv1.0/#, publishes its STATE online (retained, QoS 1), then writes one
// JSON line per Sparkplug message to stdout: the topic, its parts, seq,
// and every metric by name, names of DATA metrics resolved from the
// aliases the births declared. Each JSON line on stdin is a command to
// send: {"topic": "spBv1.0/G/NCMD/E", "metrics": [{"name":…, "type":…,
// "value":…}]}. Errors go to stderr and end the process.
'use strict';

const mqtt = require('mqtt');
const readline = require('readline');
const sparkplug = require('sparkplug-payload').get('spBv1.0');

const [url, hostId] = process.argv.slice(2);
if (!url || !hostId) {
  console.error('usage: node host.js BROKER_URL HOST_ID');
  process.exit(2);
}
const stateTopic = 'spBv1.0/STATE/' + hostId;
const state = (online) => JSON.stringify({ online, timestamp: Date.now() });

const client = mqtt.connect(url, {
  clientId: 'tahu-host-' + hostId,
  clean: true,
  reconnectPeriod: 0,
  will: { topic: stateTopic, payload: state(false), qos: 1, retain: true },
});

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const num = (v) => (v !== null && typeof v === 'object' && typeof v.toNumber === 'function' ? v.toNumber() : v);
const aliases = {}; // "node" or "node/device" -> alias -> name

client.on('connect', () => {
  client.subscribe('spBv1.0/#', { qos: 0 }, (err) => {
    if (err) throw err;
    client.publish(stateTopic, state(true), { qos: 1, retain: true }, (err) => {
      if (err) throw err;
      out({ event: 'online' });
    });
  });
});
client.on('error', (err) => {
  console.error('mqtt:', err.message);
  process.exit(1);
});
client.on('close', () => {
  console.error('mqtt: connection closed');
  process.exit(1);
});

client.on('message', (topic, message) => {
  const parts = topic.split('/');
  if (parts[0] !== 'spBv1.0' || parts[1] === 'STATE' || parts[2].endsWith('CMD')) {
    return;
  }
  const type = parts[2];
  const key = parts.slice(3).join('/');
  const p = sparkplug.decodePayload(message);
  if (type === 'NBIRTH' || type === 'DBIRTH') {
    aliases[key] = {};
    for (const m of p.metrics) {
      if (m.alias !== undefined) aliases[key][num(m.alias)] = m.name;
    }
  }
  const metrics = {};
  const unnamed = [];
  for (const m of p.metrics || []) {
    const name = m.name || (aliases[key] || {})[num(m.alias)];
    if (!name) {
      unnamed.push(num(m.alias));
      continue;
    }
    metrics[name] = { type: m.type, value: num(m.value), alias: m.alias === undefined ? null : num(m.alias), named: !!m.name };
  }
  out({
    topic, type, group: parts[1], node: parts[3], device: parts[4] || '',
    seq: p.seq === undefined || p.seq === null ? null : num(p.seq),
    timestamp: num(p.timestamp), metrics, unnamed,
  });
});

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics: cmd.metrics });
  client.publish(cmd.topic, Buffer.from(payload), { qos: 0 }, (err) => {
    if (err) throw err;
    out({ event: 'sent', topic: cmd.topic });
  });
});
