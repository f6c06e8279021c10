// One IAM simulation per line: each stdin line is a JSON object {id, simulation}, where
// simulation is iam-simulate's Simulation; each answer is one stdout line
// {id, result, errors?, explain?}. One process serves a stand-in's whole life, so that
// node and iam-data start once rather than per request.
import { createInterface } from 'node:readline'
import { runSimulation } from '@cloud-copilot/iam-simulate'

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })

function answer(id, result, extra = {}) {
  process.stdout.write(JSON.stringify({ id, result, ...extra }) + '\n')
}

async function judge(line) {
  let request
  try {
    request = JSON.parse(line)
  } catch (error) {
    answer(null, 'Error', { errors: { message: `not JSON: ${error.message}` } })
    return
  }
  try {
    const response = await runSimulation(request.simulation, { simulationMode: 'Strict' })
    if (response.resultType === 'error') {
      answer(request.id, 'Error', { errors: response.errors })
      return
    }
    const results = response.resultType === 'single' ? [response.result] : response.results
    answer(request.id, response.overallResult, {
      ignoredContextKeys: results.flatMap((r) => r.ignoredContextKeys ?? [])
    })
  } catch (error) {
    answer(request.id, 'Error', { errors: { message: String(error?.stack ?? error) } })
  }
}

// Requests are judged one at a time, in order, so that answers come back in the order asked.
let queue = Promise.resolve()
lines.on('line', (line) => {
  if (line.trim() === '') return
  // judge answers every line itself; this catch only keeps one bad line from stalling the reader
  queue = queue
    .then(() => judge(line))
    .catch((error) => answer(null, 'Error', { errors: { message: String(error?.stack ?? error) } }))
})
lines.on('close', () => {
  queue.then(() => process.exit(0))
})
