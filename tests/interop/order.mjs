// The order example (examples/order.py, a durable workflow) driven by the official TypeScript
// client (rivetkit@2.3.19).
//
//   node order.mjs http://127.0.0.1:PORT [--pool NAME] [bare|json|cbor ...]
//
// Works against `rivetkit serve examples/app.py` (embedded) and against the engine's gateway
// with `rivetkit serve examples/app.py --engine URL --pool NAME` (pass the same --pool). Each
// encoding gets its own order: a new order reports {status: "new", charges: 0}; the `pay`
// queue message {amount} is charged once, then after the 2 s cool-down the order is shipped;
// a second `pay` message charges nothing. Prints one line per step and ends with
// "N passed, M failed"; exits 1 on any failure.
import assert from "node:assert/strict";
import { createClient } from "rivetkit/client";

const args = process.argv.slice(2);
const endpoint = args.shift();
let poolName;
const poolAt = args.indexOf("--pool");
if (poolAt >= 0) {
	poolName = args[poolAt + 1];
	args.splice(poolAt, 2);
}
const encodings = args.length > 0 ? args : ["bare", "json", "cbor"];
const run = Math.random().toString(36).slice(2, 8);
let passed = 0;
let failed = 0;

function withTimeout(promise, ms, what) {
	let timer;
	const timeout = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function step(name, fn) {
	try {
		await withTimeout(fn(), 60000, name);
		passed += 1;
		console.log(`ok   ${name}`);
	} catch (error) {
		failed += 1;
		console.log(`FAIL ${name}: ${error?.stack ?? error}`);
	}
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls `read()` until `check(value)` holds; returns the last value read.
async function until(read, check, ms = 30000) {
	const deadline = Date.now() + ms;
	let value = await read();
	while (!check(value) && Date.now() < deadline) {
		await sleep(50);
		value = await read();
	}
	return value;
}

for (const encoding of encodings) {
	const client = createClient(poolName ? { endpoint, encoding, poolName } : { endpoint, encoding });
	const order = client.order.getOrCreate([`order-${run}-${encoding}`]);
	const amount = { bare: 11, json: 22, cbor: 33 }[encoding] ?? 44;

	await step(`${encoding}: a new order waits for its payment`, async () => {
		assert.deepEqual(await order.status(), { status: "new", charges: 0 });
	});

	await step(`${encoding}: the pay message is charged, then the order ships`, async () => {
		await order.send("pay", { amount });
		const charged = await until(() => order.status(), (s) => s.status !== "new");
		assert.equal(charged.charges, 1);
		assert.equal(charged.amount, amount);
		assert.ok(["charged", "shipped"].includes(charged.status), charged.status);
		const shipped = await until(() => order.status(), (s) => s.status === "shipped");
		assert.deepEqual(shipped, { status: "shipped", charges: 1, amount });
	});

	await step(`${encoding}: a second pay message charges nothing`, async () => {
		await order.send("pay", { amount: 1000 });
		await sleep(300);
		assert.deepEqual(await order.status(), { status: "shipped", charges: 1, amount });
	});

	await step(`${encoding}: the status over a connection`, async () => {
		const conn = order.connect();
		try {
			assert.deepEqual(await conn.status(), { status: "shipped", charges: 1, amount });
		} finally {
			await conn.dispose();
		}
	});

	await client.dispose();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
