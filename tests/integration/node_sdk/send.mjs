// Sends Segment calls with the real @segment/analytics-node SDK to `preempt ingest`.
// Usage: node send.mjs '<JSON list of calls>'   (env: PREEMPT_TEST_HOST, PREEMPT_TEST_WRITE_KEY)
// Each call is {"method": "track" | "identify" | "group" | "page", "args": {...}}.
// Exits non-zero if the SDK reports any delivery error.
import { Analytics } from '@segment/analytics-node'

const analytics = new Analytics({
  writeKey: process.env.PREEMPT_TEST_WRITE_KEY,
  host: process.env.PREEMPT_TEST_HOST,
  maxRetries: 3,
  flushInterval: 200,
})
let failed = false
analytics.on('error', (err) => {
  failed = true
  console.error('analytics-node error:', err?.code, err?.reason ?? err)
})
analytics.on('http_response', (res) => console.log('http_response', res.status))
for (const call of JSON.parse(process.argv[2])) {
  analytics[call.method](call.args)
}
await analytics.closeAndFlush({ timeout: 30000 })
process.exit(failed ? 1 : 0)
