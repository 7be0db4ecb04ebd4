// Sends a fixed set of calls to ferry with the unmodified Segment Node SDK, the way an
// application would: `node segment.mjs URL WRITE_KEY` (or FERRY_URL and FERRY_WRITE_KEY).
// Exits 1, naming each failure, when the SDK reports that any call was not delivered.
import { Analytics } from '@segment/analytics-node';

const url = process.argv[2] ?? process.env.FERRY_URL;
const writeKey = process.argv[3] ?? process.env.FERRY_WRITE_KEY;
if (!url || !writeKey) {
  console.error('usage: node segment.mjs URL WRITE_KEY');
  process.exit(2);
}

const analytics = new Analytics({
  writeKey,
  host: url,
  path: '/v1/batch',
  // One batch for the whole run, sent as soon as the last call is queued or the interval ends.
  maxEventsInBatch: 10,
  flushInterval: 200,
  httpRequestTimeout: 20000,
});

const failures = [];
const done = (call) => (err) => {
  if (err) failures.push(`${call}: ${err.reason?.message ?? err.message ?? err}`);
};
analytics.on('error', (err) => failures.push(`error event: ${err.code} ${err.reason?.message ?? ''}`));

const user = 'u-1001';
analytics.identify(
  {
    userId: user,
    anonymousId: 'anon-77',
    messageId: 'sdk-seg-identify',
    timestamp: '2026-11-02T09:15:00.000Z',
    traits: { email: 'ada@example.com', firstName: 'Ada', lastName: 'Lovelace', plan: 'pro', address: { city: 'London' } },
  },
  done('identify'),
);
analytics.track(
  {
    userId: user,
    event: 'Signed Up',
    messageId: 'sdk-seg-signup',
    timestamp: '2026-11-02T09:16:00.000Z',
    properties: { method: 'email' },
  },
  done('track Signed Up'),
);
analytics.track(
  {
    userId: user,
    event: 'Order Completed',
    messageId: 'sdk-seg-order',
    timestamp: '2026-11-02T09:17:30.250Z',
    properties: { order_id: 'ord-5001', revenue: 42.5, currency: 'USD', coupon: 'WELCOME' },
  },
  done('track Order Completed'),
);
// A page maps to nothing in either destination.
analytics.page(
  { userId: user, name: 'Pricing', messageId: 'sdk-seg-page', properties: { path: '/pricing' } },
  done('page'),
);
// Timestamp and messageId left to the SDK, as most applications do.
analytics.track(
  { userId: user, event: 'Referral Shared', properties: { channel: 'email' } },
  done('track Referral Shared'),
);

await analytics.closeAndFlush({ timeout: 60000 });
if (failures.length > 0) {
  for (const failure of failures) console.error(`not delivered: ${failure}`);
  process.exit(1);
}
console.log('segment: 5 calls delivered');
