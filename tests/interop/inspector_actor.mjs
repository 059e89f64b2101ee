// A RivetKit 2.3.19 (TypeScript) actor for tests/test_inspector_rivetkit.py: the same shape as
// the Python `probe` of that test (state {n}, actions bump and later), run as an envoy of the
// test's engine in the pool named by RIVET_POOL (RIVET_ENDPOINT names the engine).
import { actor, setup } from "rivetkit";

const probe = actor({
	state: { n: 0 },
	actions: {
		bump: (c) => {
			c.state.n += 1;
			return c.state.n;
		},
		later: async (c) => await c.schedule.after(3_600_000, "bump"),
	},
});

setup({ use: { probe } }).start();
