// Runs the official @linqapp/sdk (unchanged) against a running linq-sim and checks that
// everything a bot needs works: chats, sends with reply_to and idempotency keys, pagination,
// delivery status, typing (and the 403 in a group), read receipts, reactions, threads,
// attachments, webhook subscriptions, and signed webhook deliveries verified with the SDK's
// own client.webhooks.unwrap() for both payload versions.
//
// Usage: node compat.mjs <base-url> [api-key]
//   (or LINQ_SIM_URL / LINQ_SIM_API_KEY in the environment)
// Prints one line per check and exits non-zero if any check fails.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import LinqAPIV3, {
  AuthenticationError,
  BadRequestError,
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
} from '@linqapp/sdk';

const baseURL = (process.argv[2] || process.env.LINQ_SIM_URL || '').replace(/\/$/, '');
const apiKey = process.argv[3] || process.env.LINQ_SIM_API_KEY || 'sim_test_key';
if (!baseURL) {
  console.error('usage: node compat.mjs <base-url> [api-key]');
  process.exit(2);
}

let failures = 0;
let passes = 0;
function pass(name, detail = '') {
  passes += 1;
  console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
}
function fail(name, detail) {
  failures += 1;
  console.log(`FAIL ${name}: ${detail}`);
}
async function step(name, fn) {
  try {
    const detail = await fn();
    pass(name, typeof detail === 'string' ? detail : '');
  } catch (err) {
    fail(name, err?.stack || String(err));
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
async function expectError(promise, Class, code) {
  try {
    await promise;
  } catch (err) {
    assert(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err}`);
    if (code !== undefined) {
      assert(err.error?.error?.code === code, `expected code ${code}, got ${JSON.stringify(err.error)}`);
    }
    return err;
  }
  throw new Error(`expected ${Class.name}, but the call succeeded`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, pred, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// --- a local webhook receiver --------------------------------------------------------------
const received = []; // { path, headers, body }
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    received.push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const hookBase = `http://127.0.0.1:${receiver.address().port}`;

const client = new LinqAPIV3({ apiKey, baseURL, maxRetries: 0, timeout: 10000 });
const partnerClient = new LinqAPIV3({ apiKey, baseURL: `${baseURL}/api/partner`, maxRetries: 0 });

try {
  let line;
  let allEvents;
  const subs = {}; // version -> { id, secret, path }

  await step('webhookEvents.list returns the 27 event types', async () => {
    const r = await client.webhookEvents.list();
    allEvents = r.events;
    assert(Array.isArray(allEvents) && allEvents.length === 27, JSON.stringify(r));
    assert(allEvents.includes('message.edited'), 'no message.edited');
  });

  await step('phoneNumbers.list gives the bot line', async () => {
    const r = await client.phoneNumbers.list();
    line = r.phone_numbers[0]?.phone_number;
    assert(/^\+\d{8,15}$/.test(line ?? ''), JSON.stringify(r));
    return line;
  });

  await step('both base paths work (/v3 and /api/partner/v3)', async () => {
    const r = await partnerClient.phoneNumbers.list();
    assert(r.phone_numbers[0]?.phone_number === line, JSON.stringify(r));
  });

  await step('a bad API key is AuthenticationError (401, code 2004)', async () => {
    const bad = new LinqAPIV3({ apiKey: 'wrong', baseURL, maxRetries: 0 });
    await expectError(bad.phoneNumbers.list(), AuthenticationError, 2004);
  });

  await step('webhookSubscriptions.create (2026-02-03 default and ?version=2025-01-01)', async () => {
    for (const [version, path] of [
      ['2026-02-03', '/hooks/v2026'],
      ['2025-01-01', '/hooks/v2025?version=2025-01-01'],
    ]) {
      const r = await client.webhookSubscriptions.create({
        target_url: `${hookBase}${path}`,
        subscribed_events: allEvents,
      });
      assert(r.id && r.signing_secret?.startsWith('whsec_'), JSON.stringify(r));
      assert(r.is_active === true, 'not active');
      subs[version] = { id: r.id, secret: r.signing_secret, path: path.split('?')[0] };
    }
  });

  await step('webhookSubscriptions.list/retrieve never show the secret', async () => {
    const list = await client.webhookSubscriptions.list();
    const ids = list.subscriptions.map((s) => s.id);
    assert(ids.includes(subs['2026-02-03'].id) && ids.includes(subs['2025-01-01'].id), JSON.stringify(list));
    assert(list.subscriptions.every((s) => s.signing_secret === undefined), 'secret leaked in list');
    const one = await client.webhookSubscriptions.retrieve(subs['2025-01-01'].id);
    assert(one.target_url.includes('version=2025-01-01') && one.signing_secret === undefined, JSON.stringify(one));
  });

  await step('webhookSubscriptions.update (phone_numbers filter set, then cleared)', async () => {
    const id = subs['2026-02-03'].id;
    const a = await client.webhookSubscriptions.update(id, { phone_numbers: [line] });
    assert(JSON.stringify(a.phone_numbers) === JSON.stringify([line]), JSON.stringify(a));
    const b = await client.webhookSubscriptions.update(id, { phone_numbers: null, is_active: true });
    assert(b.phone_numbers === null || b.phone_numbers === undefined, JSON.stringify(b));
  });

  const human = '+15551230001';
  let chatId;
  let firstId;
  await step('chats.create (201, queued, sent_at null, own handle is_me)', async () => {
    const r = await client.chats.create({ from: line, to: [human], message: { parts: [{ type: 'text', value: 'Hello from the SDK' }] } });
    chatId = r.chat.id;
    firstId = r.chat.message.id;
    assert(chatId && firstId, JSON.stringify(r));
    assert(r.chat.message.delivery_status === 'queued' && r.chat.message.sent_at === null, JSON.stringify(r.chat.message));
    assert(r.chat.handles.some((h) => h.is_me && h.handle === line), 'no own handle');
    assert(r.chat.is_group === false, 'not a DM');
  });

  await step('chats.create with a URL in the first message is BadRequestError 1005', async () => {
    await expectError(
      client.chats.create({ from: line, to: ['+15551230009'], message: { parts: [{ type: 'text', value: 'see https://example.com' }] } }),
      BadRequestError,
      1005,
    );
  });

  await step('two consecutive text parts are BadRequestError 1004', async () => {
    await expectError(
      client.chats.messages.send(chatId, { message: { parts: [{ type: 'text', value: 'a' }, { type: 'text', value: 'b' }] } }),
      BadRequestError,
      1004,
    );
  });

  await step('an unknown chat is NotFoundError 2001', async () => {
    await expectError(client.chats.retrieve(randomUUID()), NotFoundError, 2001);
  });

  let replyId;
  const key = randomUUID();
  await step('chats.messages.send with reply_to and an idempotency key (202)', async () => {
    const r = await client.chats.messages.send(chatId, {
      message: { parts: [{ type: 'text', value: 'a threaded reply' }], reply_to: { message_id: firstId }, idempotency_key: key },
    });
    replyId = r.message.id;
    assert(r.chat_id === chatId, JSON.stringify(r));
    assert(r.message.reply_to?.message_id === firstId, JSON.stringify(r.message));
  });

  await step('a repeated idempotency key returns the same message', async () => {
    const r = await client.chats.messages.send(chatId, {
      message: { parts: [{ type: 'text', value: 'a threaded reply' }], reply_to: { message_id: firstId }, idempotency_key: key },
    });
    assert(r.message.id === replyId, `${r.message.id} != ${replyId}`);
  });

  await step('messages.create with the Idempotency-Key header reuses the chat and de-duplicates', async () => {
    const k = randomUUID();
    const a = await client.messages.create({ to: [human], message: { parts: [{ type: 'text', value: 'via messages.create' }] }, 'Idempotency-Key': k });
    const b = await client.messages.create({ to: [human], message: { parts: [{ type: 'text', value: 'via messages.create' }] }, 'Idempotency-Key': k });
    assert(a.chat_id === chatId && a.created_new_chat === false, JSON.stringify(a));
    assert(a.from_selection?.reason === 'reused_active_chat', JSON.stringify(a.from_selection));
    assert(a.message.id === b.message.id, `${a.message.id} != ${b.message.id}`);
  });

  await step('chats.messages.list paginates with next_cursor (limit 2)', async () => {
    for (let i = 0; i < 3; i += 1) {
      await client.chats.messages.send(chatId, { message: { parts: [{ type: 'text', value: `filler ${i}` }] } });
    }
    const firstPage = await client.chats.messages.list(chatId, { limit: 2 });
    assert(firstPage.messages.length === 2 && firstPage.hasNextPage(), 'first page');
    const seen = new Set();
    for await (const m of client.chats.messages.list(chatId, { limit: 2 })) seen.add(m.id);
    assert(seen.size === 6 && seen.has(firstId) && seen.has(replyId), `saw ${seen.size} messages`);
    return `${seen.size} messages`;
  });

  await step('chats.listChats paginates and filters by to', async () => {
    await client.chats.create({ from: line, to: ['+15551230002'], message: { parts: [{ type: 'text', value: 'second chat' }] } });
    const ids = [];
    for await (const c of client.chats.listChats({ limit: 1 })) ids.push(c.id);
    assert(ids.length >= 2 && ids.includes(chatId), JSON.stringify(ids));
    const filtered = await client.chats.listChats({ to: human });
    assert(filtered.chats.length === 1 && filtered.chats[0].id === chatId, JSON.stringify(filtered.chats));
  });

  await step('messages.retrieve shows delivery_status advancing queued -> ... -> read', async () => {
    const r = await client.chats.messages.send(chatId, { message: { parts: [{ type: 'text', value: 'watch me' }] } });
    const statuses = [r.message.delivery_status];
    await waitFor('read', async () => {
      const m = await client.messages.retrieve(r.message.id);
      if (statuses.at(-1) !== m.delivery_status) statuses.push(m.delivery_status);
      return m.delivery_status === 'read' && m.read_at && m.delivered_at && m.sent_at && m.is_from_me === true;
    });
    const order = ['queued', 'sent', 'delivered', 'read'];
    const ranks = statuses.map((s) => order.indexOf(s));
    assert(statuses[0] === 'queued' && ranks.every((x, i) => x >= 0 && (i === 0 || x > ranks[i - 1])), statuses.join(' -> '));
    return statuses.join(' -> ');
  });

  await step('messages.listMessagesThread gives the original and the reply', async () => {
    const page = await client.messages.listMessagesThread(replyId);
    const ids = page.messages.map((m) => m.id);
    assert(ids[0] === firstId && ids.includes(replyId), JSON.stringify(ids));
  });

  await step('typing start/stop in a DM (204)', async () => {
    const a = await client.chats.typing.start(chatId);
    const b = await client.chats.typing.stop(chatId);
    assert(a == null && b == null, `${a} ${b}`);
  });

  let groupId;
  await step('typing in a group is PermissionDeniedError (403)', async () => {
    const g = await client.chats.create({ from: line, to: ['+15551230003', '+15551230004'], message: { parts: [{ type: 'text', value: 'group hello' }] } });
    groupId = g.chat.id;
    assert(g.chat.is_group === true, 'not a group');
    await expectError(client.chats.typing.start(groupId), PermissionDeniedError);
  });

  await step('updating a DM is ConflictError 1006; renaming a group works', async () => {
    const noRetry = new LinqAPIV3({ apiKey, baseURL, maxRetries: 0 });
    await expectError(noRetry.chats.update(chatId, { display_name: 'x' }), ConflictError, 1006);
    const r = await client.chats.update(groupId, { display_name: 'The Group' });
    assert(r.chat_id === groupId, JSON.stringify(r));
    const g = await client.chats.retrieve(groupId);
    assert(g.display_name === 'The Group', g.display_name);
  });

  await step('participants add/remove (DELETE with a JSON body)', async () => {
    const a = await client.chats.participants.add(groupId, { handle: '+15551230005' });
    assert(a.status === 'accepted', JSON.stringify(a));
    const r = await client.chats.participants.remove(groupId, { handle: '+15551230005' });
    assert(r.status === 'accepted', JSON.stringify(r));
    const g = await client.chats.retrieve(groupId);
    const h = g.handles.find((x) => x.handle === '+15551230005');
    assert(h?.status === 'removed', JSON.stringify(g.handles));
  });

  await step('chats.markAsRead (204)', async () => {
    const r = await client.chats.markAsRead(chatId);
    assert(r == null, String(r));
  });

  await step('messages.addReaction add and remove', async () => {
    const a = await client.messages.addReaction(firstId, { operation: 'add', type: 'love' });
    assert(a.status === 'accepted', JSON.stringify(a));
    const m = await client.messages.retrieve(firstId);
    const reactions = m.parts[0].reactions ?? [];
    assert(reactions.length === 1 && reactions[0].type === 'love' && reactions[0].is_me === true, JSON.stringify(m.parts));
    await client.messages.addReaction(firstId, { operation: 'remove', type: 'love' });
    const m2 = await client.messages.retrieve(firstId);
    assert(!(m2.parts[0].reactions?.length), JSON.stringify(m2.parts));
  });

  await step('messages.update edits a sent message', async () => {
    const m = await client.messages.update(replyId, { text: 'an edited reply' });
    assert(m.parts[0].value === 'an edited reply', JSON.stringify(m.parts));
  });

  await step('attachments: create, PUT the bytes, send as media, retrieve', async () => {
    const bytes = Buffer.from('hello attachment');
    const a = await client.attachments.create({ filename: 'hello.txt', content_type: 'text/plain', size_bytes: bytes.length });
    assert(a.http_method === 'PUT' && a.upload_url.startsWith(baseURL), JSON.stringify(a));
    const put = await fetch(a.upload_url, { method: 'PUT', headers: a.required_headers, body: bytes });
    assert(put.ok, `upload ${put.status}`);
    const info = await client.attachments.retrieve(a.attachment_id);
    assert(info.status === 'complete' && info.size_bytes === bytes.length, JSON.stringify(info));
    const sent = await client.chats.messages.send(chatId, { message: { parts: [{ type: 'media', attachment_id: a.attachment_id }] } });
    const part = sent.message.parts[0];
    assert(part.type === 'media' && part.id === a.attachment_id && part.filename === 'hello.txt' && part.size_bytes === bytes.length, JSON.stringify(part));
    const dl = await fetch(part.url);
    assert(dl.ok && (await dl.text()) === 'hello attachment', `download ${dl.status}`);
  });

  await step('an inbound text (admin API) arrives as message.received', async () => {
    const r = await fetch(`${baseURL}/sim/inbound`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: human, text: 'hi bot', reply_to: replyId }),
    });
    const j = await r.json();
    assert(r.ok && j.chat_id === chatId && j.message_id, JSON.stringify(j));
    const m = await client.messages.retrieve(j.message_id);
    assert(m.is_from_me === false && m.reply_to?.message_id === replyId, JSON.stringify(m));
  });

  // --- webhooks ------------------------------------------------------------------------------
  const wanted = ['chat.created', 'message.sent', 'message.delivered', 'message.read', 'message.received', 'reaction.added', 'reaction.removed'];
  const byVersion = (version) => received.filter((d) => d.path.startsWith(subs[version].path));
  await step('webhooks arrive for both subscriptions', async () => {
    await waitFor('webhooks', () =>
      ['2026-02-03', '2025-01-01'].every((v) => {
        const types = new Set(byVersion(v).map((d) => JSON.parse(d.body).event_type));
        return wanted.every((t) => types.has(t));
      }),
    );
    return `${received.length} deliveries`;
  });

  for (const version of ['2026-02-03', '2025-01-01']) {
    await step(`client.webhooks.unwrap verifies every ${version} delivery`, async () => {
      const deliveries = byVersion(version);
      for (const d of deliveries) {
        const event = client.webhooks.unwrap(d.body, { headers: d.headers, key: subs[version].secret });
        assert(event.webhook_version === version, `version ${event.webhook_version}`);
        assert(d.headers['webhook-id'] === event.event_id, 'webhook-id != event_id');
        assert(d.headers['x-webhook-event'] === event.event_type, 'X-Webhook-Event');
        assert(d.headers['x-webhook-subscription-id'] === subs[version].id, 'X-Webhook-Subscription-ID');
        assert(/^[0-9a-f]{64}$/.test(d.headers['x-webhook-signature'] ?? ''), 'X-Webhook-Signature');
      }
      return `${deliveries.length} events`;
    });
  }

  await step('a tampered body or a wrong key fails unwrap', async () => {
    const d = byVersion('2026-02-03')[0];
    let threw = 0;
    try { client.webhooks.unwrap(d.body.replace('"v3"', '"v4"'), { headers: d.headers, key: subs['2026-02-03'].secret }); } catch { threw += 1; }
    try { client.webhooks.unwrap(d.body, { headers: d.headers, key: subs['2025-01-01'].secret }); } catch { threw += 1; }
    assert(threw === 2, `only ${threw} of 2 rejected`);
  });

  await step('2026-02-03 payloads: outbound message.sent and inbound message.received', async () => {
    const events = byVersion('2026-02-03').map((d) => JSON.parse(d.body));
    const sent = events.find((e) => e.event_type === 'message.sent' && e.data.id === replyId);
    assert(sent && sent.data.direction === 'outbound' && sent.data.sender_handle.is_me === true, JSON.stringify(sent));
    assert(sent.data.idempotency_key === key && sent.data.sent_at && sent.data.delivered_at === null, JSON.stringify(sent.data));
    const recv = events.find((e) => e.event_type === 'message.received');
    assert(recv && recv.data.direction === 'inbound' && recv.data.chat.owner_handle.handle === line, JSON.stringify(recv));
    const chatCreated = events.findIndex((e) => e.event_type === 'chat.created' && e.data.id === chatId);
    const firstSent = events.findIndex((e) => e.event_type === 'message.sent' && e.data.id === firstId);
    assert(chatCreated >= 0 && chatCreated < firstSent, 'chat.created did not come before message.sent');
    const ownReaction = events.find((e) => e.event_type === 'reaction.added');
    assert(ownReaction?.data.is_from_me === true && ownReaction.data.reaction_type === 'love', JSON.stringify(ownReaction));
    assert(events.some((e) => e.event_type === 'message.edited'), 'no message.edited');
  });

  await step('2025-01-01 payloads: is_from_me and nested message, no message.edited', async () => {
    const events = byVersion('2025-01-01').map((d) => JSON.parse(d.body));
    const sent = events.find((e) => e.event_type === 'message.sent' && e.data.message.id === replyId);
    assert(sent && sent.data.is_from_me === true && sent.data.chat_id === chatId, JSON.stringify(sent));
    const recv = events.find((e) => e.event_type === 'message.received');
    assert(recv && recv.data.is_from_me === false && recv.data.recipient_handle?.handle === line, JSON.stringify(recv));
    assert(!events.some((e) => e.event_type === 'message.edited'), 'message.edited sent to a 2025-01-01 subscription');
  });

  await step('webhookSubscriptions.delete (204) removes it', async () => {
    for (const v of Object.keys(subs)) {
      const r = await client.webhookSubscriptions.delete(subs[v].id);
      assert(r == null, String(r));
    }
    const list = await client.webhookSubscriptions.list();
    assert(!list.subscriptions.some((s) => s.id === subs['2026-02-03'].id), JSON.stringify(list));
    await expectError(client.webhookSubscriptions.retrieve(subs['2026-02-03'].id), NotFoundError);
  });
} finally {
  receiver.close();
}

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
