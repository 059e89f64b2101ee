// RivetKit's own inspector-protocol codec (rivetkit@2.3.19, rivetkit/inspector/client), for
// tests/test_inspector_versions.py. Reads one JSON job from stdin, writes JSON to stdout:
//
//   {"encode": [{"version": N, "embedded": bool}, ...]}
//     -> {"N": [hex or null, ...]}: StateRequest 1, RpcsListRequest 2, QueueRequest 3 (v2+),
//        DatabaseSchemaRequest 4 (v3+), SchedulesRequest 5 (v6), in version N (with its
//        2-byte prefix when embedded), as the dashboard encodes them; null where RivetKit's
//        codec throws (vbare's serialize applies the down-converters from index N-1 of a
//        newest-first list, so below v6 it runs e.g. v2->v1 on a v5 QueueRequest);
//   {"decode": [{"hex": ..., "version": N, "embedded": bool}, ...]}
//     -> {"decoded": [{tag, ...fields}, ...]}: each frame as the dashboard decodes it
//        (upgraded to v6), with the fields the test compares.
import { decode as cborDecode } from "cbor-x";
import { TO_CLIENT_VERSIONED, TO_SERVER_VERSIONED } from "rivetkit/inspector/client";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const bytesOf = (buffer) => new Uint8Array(buffer);

function requests(version) {
	const bodies = [
		{ tag: "StateRequest", val: { id: 1n } },
		{ tag: "RpcsListRequest", val: { id: 2n } },
	];
	if (version >= 2) bodies.push({ tag: "QueueRequest", val: { id: 3n, limit: 10n } });
	if (version >= 3) bodies.push({ tag: "DatabaseSchemaRequest", val: { id: 4n } });
	if (version >= 6) bodies.push({ tag: "SchedulesRequest", val: { id: 5n } });
	return bodies;
}

function summary(message) {
	const { tag, val } = message.body;
	const out = { tag };
	if (tag === "Init") {
		out.rpcs = val.rpcs;
		out.stateHex = val.state == null ? null : hex(bytesOf(val.state));
	} else if (tag === "StateResponse") {
		out.stateHex = val.state == null ? null : hex(bytesOf(val.state));
	} else if (tag === "QueueResponse") {
		out.size = String(val.status.size);
	} else if (tag === "DatabaseSchemaResponse") {
		out.tables = cborDecode(bytesOf(val.schema)).tables.map((t) => t.table.name);
	} else if (tag === "SchedulesResponse") {
		out.actions = val.schedules.map((s) => s.action);
	} else if (tag === "Error") {
		out.message = val.message;
	}
	return out;
}

const result = {};
if (job.encode) {
	for (const { version, embedded } of job.encode) {
		result[version] = requests(version).map((body) => {
			try {
				return hex(
					embedded
						? TO_SERVER_VERSIONED.serializeWithEmbeddedVersion({ body }, version)
						: TO_SERVER_VERSIONED.serialize({ body }, version),
				);
			} catch {
				return null;
			}
		});
	}
}
if (job.decode) {
	result.decoded = job.decode.map(({ hex: frame, version, embedded }) => {
		const bytes = new Uint8Array(Buffer.from(frame, "hex"));
		return summary(
			embedded
				? TO_CLIENT_VERSIONED.deserializeWithEmbeddedVersion(bytes)
				: TO_CLIENT_VERSIONED.deserialize(bytes, version),
		);
	});
}
process.stdout.write(JSON.stringify(result));
