// Reads trace bytes written by rivetkit (Python) with @rivetkit/traces' own code.
//
// stdin: JSON {entries: [[keyHex, valueHex], ...] (the actor's KV under [7, 1], prefix
// stripped), startMs, endMs, limit, resource, wireHex (a TraceQueryResponse payload)}.
// stdout: JSON {stored: readRange() of a traces instance over those entries,
//               wire: readRangeWireToOtlp(decodeReadRangeWire(wire))}.
import { createTraces } from "@rivetkit/traces";
import { decodeReadRangeWire } from "@rivetkit/traces/encoding";
import { readRangeWireToOtlp } from "@rivetkit/traces/otlp";

const input = JSON.parse(await new Promise((resolve) => {
	let data = "";
	process.stdin.on("data", (chunk) => (data += chunk));
	process.stdin.on("end", () => resolve(data));
}));

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const entries = input.entries.map(([k, v]) => ({ key: hex(k), value: hex(v) }));
const cmp = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
entries.sort((a, b) => cmp(a.key, b.key));

const driver = {
	async get(key) {
		return entries.find((e) => cmp(e.key, key) === 0)?.value ?? null;
	},
	async set() {},
	async delete() {},
	async deletePrefix() {},
	async list(prefix) {
		return entries.filter((e) => cmp(e.key.slice(0, prefix.length), prefix) === 0);
	},
	async listRange(start, end, options) {
		let out = entries.filter((e) => cmp(e.key, start) >= 0 && cmp(e.key, end) < 0);
		if (options?.reverse) out = out.slice().reverse();
		if (options?.limit !== undefined) out = out.slice(0, options.limit);
		return out;
	},
	async batch() {},
};

const traces = createTraces({ driver, resource: input.resource });
const range = { startMs: input.startMs, endMs: input.endMs, limit: input.limit };
const stored = await traces.readRange(range);
const wire = readRangeWireToOtlp(decodeReadRangeWire(hex(input.wireHex)), input.resource);
process.stdout.write(JSON.stringify({ stored, wire }));
