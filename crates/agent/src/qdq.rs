//! One tract op for each `QuantizeLinear -> DequantizeLinear` pair of a QDQ-quantized model.
//!
//! Smart Turn v3's int8 graph wraps every activation in such a pair ("fake quantization": the
//! value is snapped to the int8 grid and carried on as f32). tract 0.23 runs the pair as two
//! ops, and its `QuantizeLinearU8` is a per-element scalar loop with a branchy
//! round-half-to-even and an i32 round trip: profiled in a conversing call it took ~30 % of a
//! Smart Turn prediction, more than the matmuls' non-kernel work. [`FakeQuant`] does the same
//! arithmetic in one branch-free f32 pass that the compiler vectorizes, with bit-identical
//! results for every finite input (the tests compare it with tract's own two ops; a NaN gives
//! the low end of the grid here where tract gives the zero point; no NaN reaches these ops in
//! this model).

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

/// Adding then subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the IEEE default rounding mode), exactly as ONNX QuantizeLinear's
/// `round_half_to_even` and tract's `round_ties_to_even`.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `y = (clamp(round_half_to_even(x * q_mul) + q_zero, q_min, q_max) - dq_zero) * dq_scale`:
/// ONNX `DequantizeLinear(QuantizeLinear(x))` with per-tensor parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeQuant {
    /// QuantizeLinear's 1 / y_scale (what tract's op multiplies by).
    q_mul: f32,
    q_zero: f32,
    q_min: f32,
    q_max: f32,
    dq_zero: f32,
    dq_scale: f32,
}

// Parameters are finite numbers taken from the model; equality is the derived one.
impl Eq for FakeQuant {}

impl FakeQuant {
    fn apply(&self, values: &mut [f32]) {
        // Clamping before rounding keeps |x| far below 2^22 (ROUND_MAGIC's range) and does not
        // change the result: anything beyond one step outside the grid saturates either way.
        let (lo, hi) = (
            self.q_min - self.q_zero - 1.0,
            self.q_max - self.q_zero + 1.0,
        );
        // Comparisons and selects rather than `f32::max`/`min`: those must return the other
        // operand for a NaN, which costs three extra instructions per clamp; these compile to
        // plain `maxps`/`minps` (a NaN input saturates to the low end instead).
        let clamp = |x: f32, lo: f32, hi: f32| {
            let x = if x > lo { x } else { lo };
            if x < hi {
                x
            } else {
                hi
            }
        };
        for v in values.iter_mut() {
            let x = clamp(*v * self.q_mul, lo, hi);
            let rounded = (x + ROUND_MAGIC) - ROUND_MAGIC;
            let q = clamp(rounded + self.q_zero, self.q_min, self.q_max);
            *v = (q - self.dq_zero) * self.dq_scale;
        }
    }
}

impl Op for FakeQuant {
    fn name(&self) -> StaticName {
        "FakeQuant".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "q: 1/scale {} zero {} [{}, {}]; dq: scale {} zero {}",
            self.q_mul, self.q_zero, self.q_min, self.q_max, self.dq_scale, self.dq_zero
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for FakeQuant {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs
            .into_iter()
            .next()
            .context("FakeQuant takes one input")?;
        let mut tensor = input.into_tensor();
        self.apply(tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(tensor.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        let ctx = EvalContext::out_of_plan();
        Ok(Some(self.eval(&ctx, inputs)?))
    }
}

impl TypedOp for FakeQuant {
    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::datum_type().fact(inputs[0].shape.clone())))
    }

    // Element-wise: axes pass through, so layout rewrites can move across it as they did
    // across the two ops it replaces.
    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(Some(AxisChangeConsequence::new(model, node, None, change)))
    }
}

/// QuantizeLinear's parameters: (1 / scale, zero point, min, max) of a u8 or i8 quantizer.
fn quantizer(node: &TypedNode) -> Option<(f32, f32, f32, f32)> {
    let op = node.op_as::<ElementWiseOp>()?;
    if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
        Some((q.scale, f32::from(q.zero_point), 0.0, 255.0))
    } else {
        op.0.downcast_ref::<QuantizeLinearI8>()
            .map(|q| (q.scale, f32::from(q.zero_point), -128.0, 127.0))
    }
}

/// Replace every `DequantizeLinear` fed by a per-tensor `QuantizeLinear` of an f32 by one
/// [`FakeQuant`]. Returns how many pairs.
pub fn fuse_fake_quant(model: &mut TypedModel) -> TractResult<usize> {
    let mut pairs = Vec::new();
    for node in model.nodes() {
        let Some(dq) = node.op_as::<DequantizeLinearF32>() else {
            continue;
        };
        let q_node = model.node(node.inputs[0].node);
        let Some((q_mul, q_zero, q_min, q_max)) = quantizer(q_node) else {
            continue;
        };
        if model.outlet_fact(q_node.inputs[0])?.datum_type != f32::datum_type() {
            continue;
        }
        let dq_zero = dq.zero_point as f32;
        // The zero point and the grid must be exact in f32 for the result to be bit-identical.
        if dq.zero_point.unsigned_abs() > 1 << 20 {
            continue;
        }
        let op = FakeQuant {
            q_mul,
            q_zero,
            q_min,
            q_max,
            dq_zero,
            dq_scale: dq.scale,
        };
        pairs.push((node.id, q_node.inputs[0], op));
    }
    let count = pairs.len();
    for (dq_id, x, op) in pairs {
        let name = format!("{}.fake_quant", model.node(dq_id).name);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, x)?;
        let y = patch.wire_node(name, op, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(dq_id, 0), y)?;
        patch.apply(model)?;
    }
    // The quantizers are left unread: tract's optimizer drops them, and a plan never runs them.
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_u8, DequantizeLinearF32};

    fn run(model: TypedModel, input: &[f32]) -> Vec<f32> {
        let plan = model.into_runnable().expect("plan");
        let x = Tensor::from_shape(&[input.len()], input).expect("tensor");
        let out = plan.run(tvec!(x.into())).expect("run");
        out[0]
            .try_as_plain_ram()
            .expect("ram")
            .as_slice::<f32>()
            .expect("f32")
            .to_vec()
    }

    /// x -> QuantizeLinear(u8) -> DequantizeLinear, as tract-onnx builds it.
    fn pair(scale: f32, zero: u8) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([4096])).expect("source");
        let q = model
            .wire_node("q", quantize_linear_u8(scale.recip(), zero), &[x])
            .expect("q");
        let dq = model
            .wire_node("dq", DequantizeLinearF32::new(scale, i32::from(zero)), &q)
            .expect("dq");
        model.select_output_outlets(&dq).expect("outputs");
        model
    }

    /// Inputs covering the grid: exact ties (k + 0.5 steps, both signs), values on the grid,
    /// between steps, far outside the range both ways, signed zeros, huge values.
    fn inputs(scale: f32) -> Vec<f32> {
        let mut xs = Vec::new();
        for k in -300..300 {
            let k = k as f32;
            for frac in [0.0f32, 0.25, 0.5, 0.499_999, 0.500_001, 0.75] {
                xs.push((k + frac) * scale);
                xs.push(-(k + frac) * scale);
            }
        }
        xs.extend([0.0, -0.0, 1e30, -1e30, f32::MAX, f32::MIN, 1e-30, -1e-30]);
        xs.resize(4096, 0.123);
        xs
    }

    #[test]
    fn fused_pair_is_bit_identical_to_tract_quantize_dequantize() {
        for (scale, zero) in [
            (0.0123f32, 128u8),
            (0.5, 0),
            (0.002_17, 255),
            (1.0 / 3.0, 7),
        ] {
            let xs = inputs(scale);
            let want = run(pair(scale, zero), &xs);
            let mut fused = pair(scale, zero);
            assert_eq!(fuse_fake_quant(&mut fused).expect("fuse"), 1);
            assert!(
                fused.nodes().iter().any(|n| n.op_is::<FakeQuant>()),
                "the pair is replaced"
            );
            assert!(
                !fused
                    .nodes()
                    .iter()
                    .any(|n| n.op_is::<DequantizeLinearF32>()),
                "the dequantizer is gone"
            );
            let got = run(fused, &xs);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "scale {scale} zero {zero}: x = {} gives {g}, tract {w}",
                    xs[i]
                );
            }
        }
    }
}
