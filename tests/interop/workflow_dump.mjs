// Differential helper: runs workflows with RivetKit's own engine (@rivetkit/workflow-engine 2.3.19,
// its InMemoryDriver) and prints the stored KV and what the engine reads back from it, as JSON.
//
//   node workflow_dump.mjs cbor     < in.json   {"values": [...]}: the cbor-x bytes (the engine's CBOR) of each
//                                               tagged value, as hex
//   node workflow_dump.mjs dump                 every scenario run from an empty store
//   node workflow_dump.mjs load     < in.json   {"histories": [{"name", "kv"}]}: load each store, print the view
//   node workflow_dump.mjs continue < in.json   {"runs": [{"name", "workflow", "kv", "messages"?, "flags"?}]}: run the
//                                               named scenario workflow over the given store (empty: from
//                                               the start), print the result
//
// A store ("kv") is a list of [keyHex, valueHex] pairs of engine keys (no actor prefix), in byte order.
// A view is the engine's own decoding (loadStorage): names, entries by in-memory key, metadata, state,
// output and error, with user values tagged so JSON keeps them apart: {"$undefined": true},
// {"$bigint": "n"}, {"$bytes": "hex"}, {"$map": [[k, v]...]}, {"$set": [...]}, {"$float": "NaN"}.
import {
	CriticalError,
	InMemoryDriver,
	Loop,
	loadStorage,
	runWorkflow,
} from "@rivetkit/workflow-engine/testing";
import { encode as cborEncode } from "cbor-x";

Error.stackTraceLimit = 0; // stacks end up in the error record; keep them short and stable

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));

function tag(value) {
	if (value === undefined) return { $undefined: true };
	if (typeof value === "bigint") return { $bigint: value.toString() };
	if (typeof value === "number" && !Number.isFinite(value)) return { $float: String(value) };
	if (value instanceof Uint8Array) return { $bytes: hex(value) };
	if (value instanceof Map) return { $map: [...value].map(([k, v]) => [tag(k), tag(v)]) };
	if (value instanceof Set) return { $set: [...value].map(tag) };
	if (Array.isArray(value)) return value.map(tag);
	if (value !== null && typeof value === "object") {
		return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tag(v)]));
	}
	return value;
}

function untag(value) {
	if (Array.isArray(value)) return value.map(untag);
	if (value === null || typeof value !== "object") return value;
	if ("$undefined" in value) return undefined;
	if ("$bigint" in value) return BigInt(value.$bigint);
	if ("$float" in value) return Number(value.$float);
	if ("$bytes" in value) return new Uint8Array(Buffer.from(value.$bytes, "hex"));
	if ("$map" in value) return new Map(value.$map.map(([k, v]) => [untag(k), untag(v)]));
	if ("$set" in value) return new Set(value.$set.map(untag));
	return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, untag(v)]));
}

// Optional fields the engine leaves undefined are left out of the view.
function present(object) {
	return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}

function branchesView(branches) {
	return Object.fromEntries(
		Object.entries(branches).map(([name, b]) => [
			name,
			present({ status: b.status, output: b.output === undefined ? undefined : tag(b.output), error: b.error }),
		]),
	);
}

function kindView(kind) {
	const d = kind.data;
	switch (kind.type) {
		case "step":
			return present({ output: d.output === undefined ? undefined : tag(d.output), error: d.error });
		case "loop":
			return present({
				state: tag(d.state),
				iteration: d.iteration,
				output: d.output === undefined ? undefined : tag(d.output),
			});
		case "sleep":
			return { deadline: d.deadline, state: d.state };
		case "message":
			return { name: d.name, data: tag(d.data) };
		case "join":
			return { branches: branchesView(d.branches) };
		case "race":
			return { winner: d.winner, branches: branchesView(d.branches) };
		case "removed":
			return present({ originalType: d.originalType, originalName: d.originalName });
		default:
			return { ...d };
	}
}

async function view(driver) {
	const storage = await loadStorage(driver);
	const entries = [...storage.history.entries].map(([key, entry]) => ({
		key,
		id: entry.id,
		location: entry.location,
		type: entry.kind.type,
		data: kindView(entry.kind),
	}));
	const metadata = Object.fromEntries(
		[...storage.entryMetadata].map(([id, m]) => {
			const { dirty, ...rest } = m;
			return [id, present(rest)];
		}),
	);
	return present({
		names: storage.nameRegistry,
		entries,
		metadata,
		state: storage.state,
		output: storage.output === undefined ? undefined : tag(storage.output),
		error:
			storage.error === undefined
				? undefined
				: present({
						...storage.error,
						metadata: storage.error.metadata === undefined ? undefined : tag(storage.error.metadata),
					}),
	});
}

async function dumpKv(driver) {
	const all = await driver.list(new Uint8Array());
	return all.map(({ key, value }) => [hex(key), hex(value)]);
}

function newDriver() {
	const driver = new InMemoryDriver();
	driver.latency = 0;
	return driver;
}

// MARK: Scenarios

const everyKind = async (ctx) => {
	const greet = await ctx.step("greet", async () => "hi");
	const bytes = await ctx.step("bytes", async () => new Uint8Array([1, 2, 3]));
	const values = await ctx.step("values", async () => ({
		int: 7,
		neg: -300,
		big: 1700000000000,
		float: 1.5,
		nil: null,
		missing: undefined,
		bigint: 12345678901234567890n,
		list: [1, "x", [true, false]],
		map: new Map([[1, "one"]]),
		set: new Set([3, 4]),
		nested: { "2": "two", b: { c: "" } },
		text: "ünïcødé ✓",
	}));
	await ctx.step("void", async () => undefined);
	const loop = await ctx.loop({
		name: "L",
		state: 0,
		historyPruneInterval: 2,
		run: async (lctx, state) => {
			await lctx.step("x", async () => state * 10);
			return state >= 4 ? Loop.break(state) : Loop.continue(state + 1);
		},
	});
	const counted = await ctx.loop("plain", async (lctx) => {
		await lctx.step("once", async () => "done");
		return Loop.break("plain-done");
	});
	await ctx.sleep("nap", 1);
	await ctx.sleepUntil("past", 1);
	await ctx.rollbackCheckpoint("cp");
	await ctx.step({ name: "reserve", run: async () => "reserved", rollback: async () => {} });
	const version = await ctx.getVersion("v", 2);
	await ctx.removed("old", "step");
	const job = await ctx.queue.next("wait", { names: ["job"] });
	const timed = await ctx.queue.next("timed", { names: ["job2"], timeout: 60000 });
	const none = await ctx.queue.nextBatch("none", { names: ["never"], timeout: 0 });
	const batch = await ctx.queue.nextBatch("batch", { count: 2 });
	const joined = await ctx.join("j", {
		b: { run: async (c) => await c.step("s", async () => 1) },
		2: { run: async (c) => await c.step("s2", async () => 2) },
	});
	const raced = await ctx.race("r", [
		{ name: "fast", run: async (c) => await c.step("f", async () => "f") },
		{
			name: "slow",
			run: async (c) => {
				await c.sleep("zz", 50);
				return "s";
			},
		},
	]);
	const tried = await ctx.tryStep({
		name: "risky",
		maxRetries: 0,
		run: async () => {
			throw new CriticalError("nope");
		},
	});
	const block = await ctx.try("t", async (c) => await c.step("inner", async () => "in"));
	return {
		greet,
		bytes,
		values,
		loop,
		counted,
		version,
		job: job.body,
		timed: timed.body,
		none: none.length,
		batch: batch.map((m) => m.body),
		joined,
		raced,
		tried: tried.ok,
		block: block.ok ? block.value : null,
	};
};

const failed = async (ctx) => {
	await ctx.rollbackCheckpoint("cp");
	await ctx.step({ name: "charge", run: async () => 5, rollback: async () => {} });
	await ctx.step({
		name: "bad",
		maxRetries: 0,
		run: async () => {
			throw new Error("boom");
		},
	});
};

const rollbackError = async (ctx) => {
	await ctx.rollbackCheckpoint("cp");
	await ctx.step({
		name: "charge",
		run: async () => 5,
		rollback: async () => {
			throw new Error("refund failed");
		},
	});
	await ctx.step({
		name: "bad",
		maxRetries: 0,
		run: async () => {
			throw new CriticalError("stop");
		},
	});
};

const sleeping = async (ctx) => {
	await ctx.step("a", async () => "a");
	await ctx.join("j", {
		long: { run: async (c) => await c.sleep("wait", 3600000) },
		done: { run: async (c) => await c.step("d", async () => "d") },
	});
};

let flakyCalls = 0;
const retry = async (ctx) => {
	await ctx.step({
		name: "flaky",
		maxRetries: 2,
		retryBackoffBase: 600000,
		retryBackoffMax: 600000,
		run: async () => {
			flakyCalls += 1;
			throw new Error(`flaky ${flakyCalls}`);
		},
	});
};

const waiting = async (ctx) => {
	await ctx.step("first", async () => 1);
	await ctx.queue.next("w", { names: ["go"] });
};

const joinFailed = async (ctx) => {
	await ctx.join("j", {
		ok: { run: async (c) => await c.step("fine", async () => "fine") },
		bad: {
			run: async (c) =>
				await c.step({
					name: "broken",
					maxRetries: 0,
					run: async () => {
						throw new Error("branch broke");
					},
				}),
		},
	});
};

// The workflow a Python-written store is continued with (tests/test_workflow_differential.py
// writes the first part of its history; this code must replay it and run the rest).
const resume = async (ctx) => {
	const greet = await ctx.step("greet", async () => "ts-greet");
	const total = await ctx.loop({
		name: "L",
		state: 0,
		run: async (lctx, state) => {
			const x = await lctx.step("x", async () => `ts-${state}`);
			return state >= 2 ? Loop.break(`${x}|${state}`) : Loop.continue(state + 1);
		},
	});
	await ctx.sleep("nap", 3600000);
	await ctx.rollbackCheckpoint("cp");
	const version = await ctx.getVersion("v", 3);
	await ctx.removed("old", "step");
	const job = await ctx.queue.next("wait", { names: ["job"] });
	const timed = await ctx.queue.nextBatch("timed", { names: ["never"], timeout: 3600000 });
	const joined = await ctx.join("j", {
		a: { run: async (c) => await c.step("sa", async () => "ts-a") },
		b: { run: async (c) => await c.step("sb", async () => "ts-b") },
	});
	const raced = await ctx.race("r", [
		{ name: "fast", run: async (c) => await c.step("f", async () => "ts-fast") },
		{ name: "slow", run: async (c) => await c.step("g", async () => "ts-slow") },
	]);
	const after = await ctx.step("after", async () => "ts-after");
	return { greet, total, version, job: job.body, timed: timed.length, joined, raced, after };
};

// The workflow handed over between the engines at its queue wait "wait" (tests/
// test_workflow_differential_engine.py runs the same code in Python): one engine runs it up to
// the wait, the other continues it. `side` marks which engine ran a body.
const side = "ts";
const handoff = async (ctx) => {
	const greet = await ctx.step("greet", async () => `${side}-greet`);
	const total = await ctx.loop({
		name: "L",
		state: 0,
		historyPruneInterval: 2,
		run: async (lctx, state) => {
			const x = await lctx.step("x", async () => `${side}-${state}`);
			return state >= 4 ? Loop.break(`${x}|${state}`) : Loop.continue(state + 1);
		},
	});
	await ctx.sleepUntil("nap", 1);
	await ctx.rollbackCheckpoint("cp");
	await ctx.step({ name: "reserve", run: async () => `${side}-reserve`, rollback: async () => {} });
	const version = await ctx.getVersion("v", 2);
	await ctx.removed("old", "step");
	const first = await ctx.queue.next("first", { names: ["early"] });
	const none = await ctx.queue.nextBatch("none", { names: ["never"], timeout: 0 });
	const joined = await ctx.join("j", {
		a: { run: async (c) => await c.step("sa", async () => `${side}-a`) },
		b: { run: async (c) => await c.step("sb", async () => `${side}-b`) },
	});
	const raced = await ctx.race("r", [
		{ name: "fast", run: async (c) => await c.step("f", async () => `${side}-fast`) },
		{
			name: "slow",
			run: async (c) => {
				await c.sleep("zz", 3600000);
				return `${side}-slow`;
			},
		},
	]);
	const tried = await ctx.tryStep({
		name: "risky",
		maxRetries: 0,
		run: async () => {
			throw new CriticalError("nope");
		},
	});
	const block = await ctx.try("t", async (c) => await c.step("inner", async () => `${side}-in`));
	const msg = await ctx.queue.next("wait", { names: ["go"] });
	const after = await ctx.step("after", async () => `${side}-after`);
	return {
		greet,
		total,
		version,
		first: first.body,
		none: none.length,
		joined,
		raced,
		tried: tried.ok,
		block: block.ok ? block.value : null,
		body: msg.body,
		after,
	};
};

// A loop handed over between iterations: each iteration waits for a "tick" and adds its body.
const ticks = async (ctx) =>
	await ctx.loop({
		name: "ticks",
		state: { sum: 0, n: 0 },
		historyPruneInterval: 2,
		run: async (lctx, st) => {
			const tick = await lctx.queue.next("tick", { names: ["tick"] });
			const sum = await lctx.step("add", async () => st.sum + tick.body);
			return st.n + 1 >= 5 ? Loop.break(sum) : Loop.continue({ sum, n: st.n + 1 });
		},
	});

// A step handed over between attempts: it fails while `options.fail` is set.
let options = {};
const flaky = async (ctx) =>
	await ctx.step({
		name: "flaky",
		maxRetries: 5,
		retryBackoffBase: 1,
		retryBackoffMax: 1,
		run: async () => {
			if (options.fail) throw new Error(`${side} fails`);
			return `${side}-ok`;
		},
	});

// name -> [workflow, messages queued before the first run, how many runs]
const SCENARIOS = {
	every_kind: [
		everyKind,
		[
			["job", { v: 1 }],
			["job2", { w: 2 }],
			["other", "b1"],
			["other", "b2"],
		],
		1,
	],
	failed: [failed, [], 1],
	rollback_error: [rollbackError, [], 1],
	sleeping: [sleeping, [], 1],
	retry: [retry, [], 1],
	waiting: [waiting, [], 1],
	join_failed: [joinFailed, [], 1],
	resume: [resume, [["job", { v: "ts-job" }]], 1],
	handoff: [handoff, [["early", { e: 1 }]], 1],
	ticks: [ticks, [], 1],
	flaky: [flaky, [], 1],
};

// Queue ids are decimal text, as in a RivetKit actor's queue (the engine's own test driver
// would use UUIDs).
let nextMessageId = 1;

async function runScenario(name, driver, messages) {
	const [fn, defaults, runs] = SCENARIOS[name];
	let result;
	for (let run = 0; run < runs; run += 1) {
		const handle = runWorkflow(name, fn, undefined, driver);
		if (run === 0) {
			for (const [queue, body] of messages ?? defaults) {
				const id = String(nextMessageId++);
				await driver.messageDriver.addMessage({ id, name: queue, data: body, sentAt: Date.now() });
			}
		}
		try {
			result = { ...(await handle.result) };
			if ("output" in result) result.output = tag(result.output);
		} catch (error) {
			result = { error: { name: error.name, message: error.message } };
		}
	}
	return result;
}

async function main() {
	const mode = process.argv[2];
	const input = mode === "dump" ? {} : JSON.parse(await new Response(process.stdin).text());
	const out = [];
	if (mode === "dump") {
		for (const name of Object.keys(SCENARIOS)) {
			if (name === "resume" || name === "handoff") continue;
			const driver = newDriver();
			const result = await runScenario(name, driver);
			out.push({ name, result, kv: await dumpKv(driver), view: await view(driver) });
		}
	} else if (mode === "cbor") {
		for (const value of input.values) out.push(hex(cborEncode(untag(value))));
	} else if (mode === "load") {
		for (const { name, kv } of input.histories) {
			const driver = newDriver();
			await driver.batch(kv.map(([k, v]) => ({ key: unhex(k), value: unhex(v) })));
			let result;
			try {
				result = { view: await view(driver) };
			} catch (error) {
				result = { error: String(error?.message ?? error) };
			}
			out.push({ name, ...result });
		}
	} else if (mode === "continue") {
		for (const { name, workflow, kv, messages, flags } of input.runs) {
			options = flags ?? {};
			const driver = newDriver();
			await driver.batch(kv.map(([k, v]) => ({ key: unhex(k), value: unhex(v) })));
			const result = await runScenario(workflow, driver, messages ?? []);
			out.push({ name, result, kv: await dumpKv(driver), view: await view(driver) });
		}
	} else {
		throw new Error(`unknown mode ${mode}`);
	}
	process.stdout.write(JSON.stringify(out));
}

await main();
