// Decodes workflow history transport bytes (hex, argv[2]) with rivetkit@2.3.19's own codec
// (`decodeWorkflowHistoryTransport`) and prints them as JSON: maps as objects, bigints as
// numbers, `data` fields as lowercase hex strings. Used by tests/test_workflow_inspector.py.
import { decodeWorkflowHistoryTransport } from "rivetkit/experimental/inspector/workflow";

const bytes = new Uint8Array(Buffer.from(process.argv[2], "hex"));
const history = decodeWorkflowHistoryTransport(bytes);
console.log(
	JSON.stringify(history, (_key, value) => {
		if (typeof value === "bigint") return Number(value);
		if (value instanceof Map) return Object.fromEntries(value);
		if (value instanceof ArrayBuffer) return Buffer.from(value).toString("hex");
		return value;
	}),
);
