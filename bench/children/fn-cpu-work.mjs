// The CPU-heavy function of the fn-cpu bench: about a hundred microseconds (idle machine) of arithmetic per call.
export default function work(body) {
  let x = body.seed;
  for (let i = 0; i < 40_000; i++) x = (x * 31 + i) % 1_000_003;
  return { seed: body.seed, x };
}
