// Sends a fixed set of events to ferry with the unmodified Amplitude Node SDK, the way an
// application would: `node amplitude.mjs URL API_KEY` (or FERRY_URL and FERRY_API_KEY), where URL
// is ferry's base URL; the SDK posts to URL/2/httpapi.
// Exits 1, naming each failure, when the SDK reports that any event was not delivered.
import { createInstance } from '@amplitude/analytics-node';

const url = process.argv[2] ?? process.env.FERRY_URL;
const apiKey = process.argv[3] ?? process.env.FERRY_API_KEY;
if (!url || !apiKey) {
  console.error('usage: node amplitude.mjs URL API_KEY');
  process.exit(2);
}

const client = createInstance();
await client.init(apiKey, {
  serverUrl: `${url}/2/httpapi`,
  // One upload for the whole run.
  flushQueueSize: 10,
  flushIntervalMillis: 200,
  // One attempt: a refused upload is reported at once instead of retried for minutes.
  flushMaxRetries: 1,
}).promise;

const events = [
  {
    event_type: 'Referral Completed',
    user_id: 'ann@example.com',
    device_id: 'C8F9E604-F01A-4BD9-95C6-8E5357DF265D',
    time: 1763632800123,
    insert_id: 'sdk-amp-referral',
    event_properties: { plan: 'premium', amount: 49.9, coupon_code: 'FRIEND10' },
    user_properties: { unique_id: 88123, city: 'Lisbon' },
    groups: { company: 'Acme' },
  },
  {
    event_type: 'Purchase',
    user_id: 'bob@example.com',
    time: 1763636400000,
    insert_id: 'sdk-amp-purchase',
    event_properties: { price: 12.5, quantity: 2, tags: ['gift', 'sale'] },
  },
  // Time and insert_id left to the SDK, as most applications do.
  { event_type: 'Signup', user_id: 'cy@example.com', event_properties: { source: 'ad' } },
];

const results = await Promise.all(events.map((event) => client.track(event).promise));
await client.flush().promise;
const failures = results.filter((result) => result.code !== 200);
if (failures.length > 0) {
  for (const failure of failures) {
    console.error(`not delivered: ${failure.event.event_type}: ${failure.code} ${failure.message}`);
  }
  process.exit(1);
}
console.log(`amplitude: ${results.length} events delivered`);
