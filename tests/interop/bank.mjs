// The bank example (examples/bank.py) driven by the official TypeScript client (rivetkit@2.3.19).
//
//   node bank.mjs http://127.0.0.1:PORT [--pool NAME] [bare|json|cbor ...]
//
// Works against `rivetkit serve examples/app.py` (embedded) and against the engine's gateway
// with `rivetkit serve examples/app.py --engine URL --pool NAME` (pass the same --pool).
// `bank.transfer` calls the `account` actors from inside the actor (c.client()). Every step
// has a timeout; prints one line per step and ends with "N passed, M failed"; exits 1 on any
// failure.
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
		await withTimeout(fn(), 30000, name);
		passed += 1;
		console.log(`ok   ${name}`);
	} catch (error) {
		failed += 1;
		console.log(`FAIL ${name}: ${error?.stack ?? error}`);
	}
}

async function expectError(promise, group, code) {
	try {
		await promise;
	} catch (error) {
		assert.equal(error.group, group, `group of ${error}`);
		assert.equal(error.code, code, `code of ${error}`);
		return error;
	}
	assert.fail(`expected ${group}/${code}`);
}

for (const encoding of encodings) {
	const client = createClient(poolName ? { endpoint, encoding, poolName } : { endpoint, encoding });
	const alice = `alice-${run}-${encoding}`;
	const bob = `bob-${run}-${encoding}`;
	const bank = client.bank.getOrCreate([`bank-${run}-${encoding}`]);

	await step(`${encoding}: transfer moves the money`, async () => {
		assert.equal(await client.account.getOrCreate([alice]).deposit(100), 100);
		assert.deepEqual(await bank.transfer(alice, bob, 30), { from: 70, to: 30 });
		assert.equal(await client.account.get([alice]).balance(), 70);
		assert.equal(await client.account.get([bob]).balance(), 30);
	});

	await step(`${encoding}: insufficient funds reaches the caller as a user error`, async () => {
		const error = await expectError(bank.transfer(alice, bob, 1000), "user", "insufficient_funds");
		assert.match(error.message, /insufficient funds/);
		assert.deepEqual(error.metadata, { balance: 70, amount: 1000 });
		assert.equal(await client.account.get([alice]).balance(), 70);
		assert.equal(await client.account.get([bob]).balance(), 30);
	});

	await step(`${encoding}: bad amounts are refused`, async () => {
		await expectError(bank.transfer(alice, bob, 0), "user", "invalid_amount");
		await expectError(bank.transfer(alice, bob, -3), "user", "invalid_amount");
		await expectError(bank.transfer(alice, alice, 3), "user", "same_account");
		await expectError(bank.transfer(alice, bob, "ten"), "actor", "validation_error");
		assert.equal(await client.account.get([alice]).balance(), 70);
	});

	await step(`${encoding}: transfers over a connection`, async () => {
		const conn = bank.connect();
		try {
			assert.deepEqual(await conn.transfer(bob, alice, 10), { from: 20, to: 80 });
			await expectError(conn.transfer(bob, alice, 21), "user", "insufficient_funds");
			const both = await Promise.all([conn.transfer(alice, bob, 5), conn.transfer(alice, bob, 5)]);
			assert.deepEqual(both.map((r) => r.from).sort(), [70, 75]);
			assert.equal(await client.account.get([bob]).balance(), 30);
		} finally {
			await conn.dispose();
		}
	});

	await client.dispose();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
