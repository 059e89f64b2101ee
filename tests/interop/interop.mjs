// Drives a rivetkit-for-Python server with the official TypeScript client (rivetkit@2.3.19).
//
//   node interop.mjs http://127.0.0.1:PORT [bare|json|cbor ...]
//
// Expects the example apps (examples/app.py): `counter`, `chat` and `worker`. Every step has a timeout,
// because protocol mistakes show up as hangs in this client, not as errors. Prints one line per
// step and ends with "N passed, M failed"; exits 1 on any failure.
import assert from "node:assert/strict";
import { createClient } from "rivetkit/client";

const endpoint = process.argv[2];
const encodings = process.argv.length > 3 ? process.argv.slice(3) : ["bare", "json", "cbor"];
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
		await withTimeout(fn(), 15000, name);
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

function nextEvent(conn, name) {
	return new Promise((resolve) => {
		const off = conn.on(name, (...args) => {
			off();
			resolve(args);
		});
	});
}

for (const encoding of encodings) {
	const client = createClient({ endpoint, encoding });
	const key = `interop-${run}-${encoding}`;
	const counter = client.counter.getOrCreate([key]);

	await step(`${encoding}: http actions`, async () => {
		assert.equal(await counter.increment(5), 5);
		assert.equal(await counter.increment(2), 7);
		assert.equal(await counter.getCount(), 7);
	});

	await step(`${encoding}: resolve, getForId, create`, async () => {
		const id = await counter.resolve();
		assert.equal(typeof id, "string");
		assert.equal(await client.counter.getForId(id).getCount(), 7);
		const created = await client.counter.create([`${key}-created`]);
		assert.equal(await created.increment(1), 1);
		assert.equal(await client.counter.get([`${key}-created`]).getCount(), 1);
	});

	await step(`${encoding}: http errors`, async () => {
		const error = await expectError(counter.increment(-1), "user", "negative_amount");
		assert.match(error.message, /amount must be >= 0/);
		await expectError(counter.nope(), "actor", "action_not_found");
	});

	await step(`${encoding}: connection, events and errors by action id`, async () => {
		const conn = counter.connect();
		try {
			const event = nextEvent(conn, "newCount");
			assert.equal(await conn.increment(1), 8);
			assert.deepEqual(await event, [8]);
			const both = await Promise.all([conn.increment(1), conn.increment(1)]);
			assert.deepEqual(both.sort(), [10, 9].sort());
			await expectError(conn.increment(-5), "user", "negative_amount");
			assert.equal(await conn.getCount(), 10);
		} finally {
			await conn.dispose();
		}
	});

	await step(`${encoding}: broadcast reaches another connection`, async () => {
		const listener = counter.connect();
		const actor = counter.connect();
		try {
			const event = nextEvent(listener, "newCount");
			await listener.getCount(); // the listener is open and subscribed
			assert.equal(await actor.increment(1), 11);
			assert.deepEqual(await event, [11]);
		} finally {
			await listener.dispose();
			await actor.dispose();
		}
	});

	await step(`${encoding}: chat with params, events and history`, async () => {
		const room = client.chat.getOrCreate([`room-${run}-${encoding}`]);
		const alice = room.connect({ user: "alice" });
		const bob = room.connect({ user: "bob" });
		try {
			const heard = nextEvent(bob, "message");
			await bob.history();
			assert.equal(await alice.post("hello"), 1);
			assert.deepEqual(await heard, ["alice", "hello"]);
			assert.deepEqual(await bob.history(), [{ user: "alice", text: "hello" }]);
		} finally {
			await alice.dispose();
			await bob.dispose();
		}
	});

	await step(`${encoding}: refused connection delivers the error`, async () => {
		const room = client.chat.getOrCreate([`room-${run}-${encoding}`]);
		const conn = room.connect();
		try {
			const error = await new Promise((resolve) => {
				conn.onError((e) => resolve(e));
			});
			assert.equal(error.group, "user");
			assert.equal(error.code, "missing_user");
		} finally {
			await conn.dispose();
		}
	});

	await step(`${encoding}: chat events reach only subscribers`, async () => {
		const room = client.chat.getOrCreate([`events-${run}-${encoding}`]);
		const listener = room.connect({ user: "lia" });
		const quiet = room.connect({ user: "quinn" });
		const poster = room.connect({ user: "pat" });
		try {
			const heard = [];
			listener.on("message", (user, text) => heard.push([user, text]));
			const quietHeard = [];
			// quinn listens to another event only: it must not get "message".
			quiet.on("other", (...args) => quietHeard.push(args));
			await listener.history(); // subscribed and open
			await quiet.history();
			assert.equal(await poster.post("one"), 1);
			assert.equal(await poster.post("two"), 2);
			await withTimeout(
				(async () => {
					while (heard.length < 2) await new Promise((r) => setTimeout(r, 10));
				})(),
				5000,
				"two events",
			);
			assert.deepEqual(heard, [
				["pat", "one"],
				["pat", "two"],
			]);
			assert.deepEqual(quietHeard, []);
		} finally {
			await listener.dispose();
			await quiet.dispose();
			await poster.dispose();
		}
	});

	await step(`${encoding}: refused connection rejects its actions`, async () => {
		const room = client.chat.getOrCreate([`refused-${run}-${encoding}`]);
		const conn = room.connect({});
		try {
			await expectError(conn.history(), "user", "missing_user");
		} finally {
			await conn.dispose();
		}
	});

	await step(`${encoding}: queue sends to the worker`, async () => {
		const worker = client.worker.getOrCreate([`worker-${run}-${encoding}`]);
		const before = await worker.processed();
		assert.equal(await worker.send("jobs", { x: 1 }), undefined);
		const result = await worker.send("jobs", { x: 21 }, { wait: true, timeout: 10000 });
		assert.deepEqual(result, { status: "completed", response: { doubled: 42 } });
		// FIFO: the first job was processed before the second completed.
		assert.equal(await worker.processed(), before + 2);
		const both = await Promise.all([
			worker.send("jobs", { x: 2 }, { wait: true, timeout: 10000 }),
			worker.send("jobs", { x: 3 }, { wait: true, timeout: 10000 }),
		]);
		assert.deepEqual(
			both.map((r) => r.response.doubled),
			[4, 6],
		);
		// Nobody consumes "other": the wait times out, the message stays queued.
		const timedOut = await worker.send("other", { x: 0 }, { wait: true, timeout: 50 });
		assert.equal(timedOut.status, "timedOut");
	});

	await step(`${encoding}: queue send through a connection's params`, async () => {
		// A queue send opens an ephemeral connection: chat refuses it without a user.
		const room = client.chat.getOrCreate([`queue-${run}-${encoding}`]);
		await expectError(room.send("anything", { a: 1 }), "user", "missing_user");
		const withUser = client.chat.getOrCreate([`queue-${run}-${encoding}`], {
			params: { user: "qa" },
		});
		assert.equal(await withUser.send("anything", { a: 1 }), undefined);
	});

	await client.dispose();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
