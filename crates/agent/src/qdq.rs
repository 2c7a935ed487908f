//! Running Smart Turn's int8 QDQ graph fast in tract: integer matmuls and one-pass quantization.
//!
//! The published model keeps every weight as int8 and wraps every activation in a
//! `QuantizeLinear -> DequantizeLinear` pair ("fake quantization": snapped to the int8 grid and
//! carried on as f32). tract 0.23 runs that literally: the matmuls in f32 on dequantized
//! weights, and each quantizer as a per-element scalar loop (a branchy round-half-to-even and an
//! i32 round trip). Profiled, a prediction spent ~60 % in f32 matmuls and ~25 % quantizing.
//! Three rewrites, applied when the model is loaded:
//!
//! 1. [`signed_activations`] (ONNX graph): u8 activations become i8 ones, zero points 128
//!    lower; every value stays the same, and the integer kernels then need no conversion pass.
//! 2. [`integer_matmuls`] (ONNX graph): `MatMul(DQ(activation), DQ(weight))` becomes
//!    `MatMulInteger -> (+ integer zero-point correction) -> Cast -> Mul(scales)`, which tract
//!    runs on its int8 kernels (AVX-512 VNNI where the CPU has it), with exact i32 sums, the way
//!    onnxruntime runs this graph.
//! 3. [`fuse_fake_quant`] (tract's typed graph): each remaining quantize/dequantize pair becomes
//!    one vectorized f32 op ([`FakeQuant`]), each quantizer feeding an integer matmul one
//!    vectorized op ([`Quantize`]); both bit-identical to tract's ops for every finite input.
//!
//! Measured with `examples/model_bench` (CPU time per prediction, this 2-core AMD EPYC with
//! AVX-512 VNNI): 190 ms as published, 159 ms with 3 alone (same output bits), 106 ms with all
//! three. The integer sums are exact where the f32 ones rounded, so probabilities move in their
//! last digits; on 32 espeak-ng utterances the median distance to onnxruntime is 0.017 (0.008
//! for the f32 graph; onnxruntime's own optimized and unoptimized runs differ by a median 0.004
//! and up to 0.57 on this chaotic int8 model) and 30 of 32 take the same side of 0.5 as
//! onnxruntime, as the f32 graph and onnxruntime's unoptimized run do.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

/// Adding then subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to the nearest
/// integer, ties to even (the IEEE default rounding mode), exactly as ONNX QuantizeLinear's
/// `round_half_to_even` and tract's `round_ties_to_even`.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// A per-tensor QuantizeLinear: `clamp(round_half_to_even(x * q_mul) + zero, min, max)`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Grid {
    /// 1 / y_scale (what tract's op multiplies by).
    q_mul: f32,
    zero: f32,
    min: f32,
    max: f32,
}

impl Grid {
    /// The quantized value, as an f32 holding an integer in `min..=max`. Comparisons and
    /// selects rather than `f32::max`/`min`: those must return the other operand for a NaN,
    /// which costs three extra instructions per clamp; these compile to plain `maxps`/`minps`
    /// (a NaN saturates to `min` here, where tract gives the zero point; no NaN reaches these
    /// ops in this model). Clamping before rounding keeps |x| far below 2^22 (ROUND_MAGIC's
    /// range) and does not change the result: anything beyond one step off the grid saturates
    /// either way.
    #[inline(always)]
    fn quantize(&self, x: f32) -> f32 {
        let clamp = |x: f32, lo: f32, hi: f32| {
            let x = if x > lo { x } else { lo };
            if x < hi {
                x
            } else {
                hi
            }
        };
        let x = clamp(
            x * self.q_mul,
            self.min - self.zero - 1.0,
            self.max - self.zero + 1.0,
        );
        let rounded = (x + ROUND_MAGIC) - ROUND_MAGIC;
        clamp(rounded + self.zero, self.min, self.max)
    }
}

/// QuantizeLinear's grid, from tract's op: (1 / scale, zero point, min, max), u8 or i8.
fn grid_of(node: &TypedNode) -> Option<Grid> {
    let op = node.op_as::<ElementWiseOp>()?;
    if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
        Some(Grid {
            q_mul: q.scale,
            zero: f32::from(q.zero_point),
            min: 0.0,
            max: 255.0,
        })
    } else {
        op.0.downcast_ref::<QuantizeLinearI8>().map(|q| Grid {
            q_mul: q.scale,
            zero: f32::from(q.zero_point),
            min: -128.0,
            max: 127.0,
        })
    }
}

/// `y = (grid(x) - dq_zero) * dq_scale`: ONNX `DequantizeLinear(QuantizeLinear(x))` with
/// per-tensor parameters, in place on the f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeQuant {
    grid: Grid,
    dq_zero: f32,
    dq_scale: f32,
}

/// ONNX `QuantizeLinear` of an f32 with per-tensor parameters, to u8 or i8: tract's own op, in
/// one branch-free vectorized pass. It feeds the integer matmuls ([`integer_matmuls`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantize {
    grid: Grid,
}

// Parameters are finite numbers taken from the model; equality is the derived one.
impl Eq for FakeQuant {}
impl Eq for Quantize {}

impl Quantize {
    fn datum_type(&self) -> DatumType {
        if self.grid.min < 0.0 {
            i8::datum_type()
        } else {
            u8::datum_type()
        }
    }
}

impl Op for FakeQuant {
    fn name(&self) -> StaticName {
        "FakeQuant".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "q: {:?}; dq: scale {} zero {}",
            self.grid, self.dq_scale, self.dq_zero
        )])
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl Op for Quantize {
    fn name(&self) -> StaticName {
        "Quantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.grid)])
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
        for v in tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()? {
            *v = (self.grid.quantize(*v) - self.dq_zero) * self.dq_scale;
        }
        Ok(tvec!(tensor.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }
}

impl EvalOp for Quantize {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs.first().context("Quantize takes one input")?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut out = Tensor::zero_dt(self.datum_type(), input.shape())?;
        let mut ram = out.try_as_plain_ram_mut()?;
        // The quantized value q is an integer in -128..=255, so q + 1.5 * 2^23 is exact and its
        // low mantissa byte is q's two's-complement byte: a bit cast and a truncation, which
        // vectorize, where `q as u8` compiled to one scalar conversion per value.
        let byte = |x: f32| (self.grid.quantize(x) + ROUND_MAGIC).to_bits() as u8;
        if self.grid.min < 0.0 {
            for (y, &x) in ram.as_slice_mut::<i8>()?.iter_mut().zip(xs) {
                *y = byte(x) as i8;
            }
        } else {
            for (y, &x) in ram.as_slice_mut::<u8>()?.iter_mut().zip(xs) {
                *y = byte(x);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(self.eval(&EvalContext::out_of_plan(), inputs)?))
    }
}

/// Both ops are element-wise: axes pass through, so layout rewrites can move across them as
/// they did across tract's ops they replace.
macro_rules! element_wise_typed_op {
    ($op:ty, $dt:expr) => {
        impl TypedOp for $op {
            fn as_op(&self) -> &dyn Op {
                self
            }

            fn as_op_mut(&mut self) -> &mut dyn Op {
                self
            }

            fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
                #[allow(clippy::redundant_closure_call)]
                let dt = ($dt)(self);
                Ok(tvec!(dt.fact(inputs[0].shape.clone())))
            }

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
    };
}

element_wise_typed_op!(FakeQuant, |_: &FakeQuant| f32::datum_type());
element_wise_typed_op!(Quantize, |q: &Quantize| q.datum_type());

/// Replace every `DequantizeLinear` fed by a per-tensor `QuantizeLinear` of an f32 by one
/// [`FakeQuant`], then every remaining such `QuantizeLinear` (those feeding integer matmuls) by
/// [`Quantize`]. Returns how many pairs were fused.
pub fn fuse_fake_quant(model: &mut TypedModel) -> TractResult<usize> {
    let mut pairs = Vec::new();
    for node in model.nodes() {
        let Some(dq) = node.op_as::<DequantizeLinearF32>() else {
            continue;
        };
        let q_node = model.node(node.inputs[0].node);
        let Some(grid) = grid_of(q_node) else {
            continue;
        };
        // The zero point must be exact in f32 for the result to be bit-identical.
        if model.outlet_fact(q_node.inputs[0])?.datum_type != f32::datum_type()
            || dq.zero_point.unsigned_abs() > 1 << 20
        {
            continue;
        }
        let op = FakeQuant {
            grid,
            dq_zero: dq.zero_point as f32,
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
    // Every other quantizer of an f32 (those feeding the integer matmuls, and those only the
    // replaced dequantizers read, which the optimizer then drops).
    let quantizers: Vec<(usize, Grid)> = model
        .nodes()
        .iter()
        .filter_map(|n| Some((n.id, grid_of(n)?)))
        .filter(|(id, _)| {
            let input = model.node(*id).inputs[0];
            matches!(model.outlet_fact(input), Ok(f) if f.datum_type == f32::datum_type())
        })
        .collect();
    for (id, grid) in quantizers {
        let node = model.node(id);
        let patch =
            TypedModelPatch::replace_single_op(model, node, &node.inputs, Quantize { grid })?;
        patch.apply(model)?;
    }
    Ok(count)
}

/// One `DequantizeLinear` of the graph: what it reads and its constant parameters.
struct Dequant<'a> {
    /// The quantized tensor (an activation's `QuantizeLinear` output, or a weight initializer).
    input: &'a str,
    /// Scale: one value, or one per channel along `axis`.
    scale: Vec<f32>,
    axis: i64,
    /// The zero point's first value (0 without one); `zero_is_zero`: all its values are 0.
    zero: i32,
    zero_is_zero: bool,
    input_is_weight: bool,
}

fn float_values(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != pb::tensor_proto::DataType::Float as i32 {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    t.raw_data.len().is_multiple_of(4).then(|| {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

fn all_zero(t: &pb::TensorProto) -> bool {
    t.int32_data.iter().all(|&v| v == 0) && t.raw_data.iter().all(|&b| b == 0)
}

fn int_values(t: &pb::TensorProto) -> Vec<i32> {
    let signed = t.data_type == pb::tensor_proto::DataType::Int8 as i32;
    if t.raw_data.is_empty() {
        t.int32_data.clone()
    } else if signed {
        t.raw_data.iter().map(|&b| i32::from(b as i8)).collect()
    } else {
        t.raw_data.iter().map(|&b| i32::from(b)).collect()
    }
}

/// Make every u8 quantization of the graph an i8 one: each scalar u8 zero point that only
/// `QuantizeLinear`/`DequantizeLinear` nodes read becomes an i8 one, 128 lower. Every value is
/// the same (a quantizer now yields q - 128 where it yielded q, its dequantizers subtract the
/// zero point minus 128); what changes is that tract's integer matmuls then take the
/// activations as they come, with no u8 -> i8 conversion pass and no zero-point correction for
/// the shift. Returns how many zero points changed.
pub fn signed_activations(proto: &mut pb::ModelProto) -> usize {
    let Some(graph) = proto.graph.as_mut() else {
        return 0;
    };
    let mut only_qdq: HashMap<String, bool> = HashMap::new();
    for node in &graph.node {
        for (slot, input) in node.input.iter().enumerate() {
            let qdq = slot == 2
                && (node.op_type == "QuantizeLinear" || node.op_type == "DequantizeLinear");
            only_qdq
                .entry(input.clone())
                .and_modify(|ok| *ok &= qdq)
                .or_insert(qdq);
        }
    }
    let mut count = 0;
    for t in &mut graph.initializer {
        let u8_scalar = t.data_type == pb::tensor_proto::DataType::Uint8 as i32
            && t.dims.iter().product::<i64>() == 1;
        if !u8_scalar || !only_qdq.get(&t.name).copied().unwrap_or(false) {
            continue;
        }
        let Some(&zero) = int_values(t).first() else {
            continue;
        };
        t.data_type = pb::tensor_proto::DataType::Int8 as i32;
        t.raw_data.clear();
        t.int32_data = vec![zero - 128];
        count += 1;
    }
    count
}

/// Rewrite each `MatMul(DequantizeLinear(a), DequantizeLinear(b))` of a QDQ ONNX graph (the
/// int8 Whisper encoder's projections, feed-forward layers and attention products) into
/// `MatMulInteger(a, b) -> Cast(float) -> Mul(scale_a * scale_b)`: the same product computed
/// on the 8-bit values with exact i32 sums, which tract runs with its integer kernels
/// (AVX-512 VNNI `vpdpbusd` where the CPU has it) instead of dequantizing to f32 first. That is
/// how onnxruntime runs this graph too. Only per-tensor activation scales and weights with
/// per-output-channel scales and zero zero points are rewritten; anything else is left as it
/// is. Returns how many matmuls were rewritten.
pub fn integer_matmuls(proto: &mut pb::ModelProto) -> usize {
    let Some(graph) = proto.graph.as_mut() else {
        return 0;
    };
    let inits: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let dequant: HashMap<&str, Dequant> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear" && n.output.len() == 1)
        .filter_map(|n| {
            let scale = float_values(inits.get(n.input.get(1)?.as_str())?)?;
            let zero_point = n.input.get(2).filter(|z| !z.is_empty());
            let zero = match zero_point {
                Some(z) => Some(*inits.get(z.as_str())?),
                None => None,
            };
            let axis = n
                .attribute
                .iter()
                .find(|a| a.name == "axis")
                .map_or(1, |a| a.i);
            Some((
                n.output[0].as_str(),
                Dequant {
                    input: n.input[0].as_str(),
                    scale,
                    axis,
                    zero: zero
                        .and_then(|z| int_values(z).first().copied())
                        .unwrap_or(0),
                    zero_is_zero: zero.is_none_or(all_zero),
                    input_is_weight: inits.contains_key(n.input[0].as_str()),
                },
            ))
        })
        .collect();
    let mut rewritten: Vec<(usize, Vec<pb::NodeProto>, Vec<pb::TensorProto>)> = Vec::new();
    for (ix, node) in graph.node.iter().enumerate() {
        if node.op_type != "MatMul" || node.input.len() != 2 || node.output.len() != 1 {
            continue;
        }
        let (Some(a), Some(b)) = (
            dequant.get(node.input[0].as_str()),
            dequant.get(node.input[1].as_str()),
        ) else {
            continue;
        };
        // The left operand: an activation with one scale. The right one: a [K, N] weight with
        // one scale (per tensor or per output column) and zero zero points. Activation times
        // activation (the attention's two products) stays in f32: both zero points are
        // non-zero there, and tract's correction for them (row and column sums, then generic
        // broadcast arithmetic over the 6 x 400 x 400 scores) cost more than the integer
        // kernel saved (135 ms of CPU per prediction with them rewritten, 110 without).
        if a.input_is_weight || a.scale.len() != 1 || !b.input_is_weight || !b.zero_is_zero {
            continue;
        }
        let Some(w) = inits.get(b.input) else {
            continue;
        };
        let &[k, n] = w.dims.as_slice() else {
            continue;
        };
        let per_column = (b.axis == 1 || b.axis == -1) && b.scale.len() as i64 == n;
        if !(per_column || b.scale.len() == 1) || k <= 0 || n <= 0 {
            continue;
        }
        let (k, n) = (k as usize, n as usize);
        let weights = int_values(w);
        if weights.len() != k * n {
            continue;
        }
        // y[., n] = sa * sw[n] * sum_k (qa - za) * qw[k, n]
        //         = sa * sw[n] * (sum_k qa * qw[k, n] - za * colsum[n]):
        // the integer product needs no zero point (the kernels' plain path), and the
        // activation's zero point becomes an integer constant per column, added exactly
        // before the one rounding to f32.
        let correction: Vec<i32> = (0..n)
            .map(|col| {
                let colsum: i64 = (0..k).map(|row| i64::from(weights[row * n + col])).sum();
                i32::try_from(-i64::from(a.zero) * colsum).unwrap_or(i32::MAX)
            })
            .collect();
        if correction.contains(&i32::MAX) {
            continue;
        }
        let rescale: Vec<f32> = b.scale.iter().map(|s| a.scale[0] * s).collect();
        let out = &node.output[0];
        let name = &node.name;
        let vector = |dims: usize| {
            if dims == 1 {
                vec![]
            } else {
                vec![dims as i64]
            }
        };
        let mut constants = vec![pb::TensorProto {
            name: format!("{out}.rescale"),
            data_type: pb::tensor_proto::DataType::Float as i32,
            dims: vector(rescale.len()),
            float_data: rescale,
            ..Default::default()
        }];
        let node = |op: &str, suffix: &str, input: Vec<String>, output: String| pb::NodeProto {
            name: format!("{name}.{suffix}"),
            op_type: op.into(),
            input,
            output: vec![output],
            ..Default::default()
        };
        let mut nodes = vec![node(
            "MatMulInteger",
            "integer",
            vec![a.input.to_string(), b.input.to_string()],
            format!("{out}.product"),
        )];
        let mut exact = format!("{out}.product");
        if a.zero != 0 {
            constants.push(pb::TensorProto {
                name: format!("{out}.correction"),
                data_type: pb::tensor_proto::DataType::Int32 as i32,
                dims: vector(n),
                int32_data: correction,
                ..Default::default()
            });
            nodes.push(node(
                "Add",
                "correction",
                vec![exact, format!("{out}.correction")],
                format!("{out}.corrected"),
            ));
            exact = format!("{out}.corrected");
        }
        nodes.push(pb::NodeProto {
            attribute: vec![pb::AttributeProto {
                name: "to".into(),
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                i: pb::tensor_proto::DataType::Float as i64,
                ..Default::default()
            }],
            ..node("Cast", "to_float", vec![exact], format!("{out}.float"))
        });
        nodes.push(node(
            "Mul",
            "rescale",
            vec![format!("{out}.float"), format!("{out}.rescale")],
            out.clone(),
        ));
        rewritten.push((ix, nodes, constants));
    }
    let count = rewritten.len();
    // Splice from the back so the indices of the earlier nodes stay valid; the new nodes take
    // the matmul's place, which keeps the node list in topological order.
    for (ix, nodes, constants) in rewritten.into_iter().rev() {
        graph.node.splice(ix..=ix, nodes);
        graph.initializer.extend(constants);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::InferenceModelExt;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_u8, DequantizeLinearF32};

    fn run(model: TypedModel, input: &[f32]) -> Vec<f32> {
        let plan = model.into_runnable().expect("plan");
        let x = Tensor::from_shape(&[input.len()], input).expect("tensor");
        f32_output(&plan.run(tvec!(x.into())).expect("run"))
    }

    /// A plan's first output, as f32 values.
    fn f32_output(out: &[TValue]) -> Vec<f32> {
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

    fn init(name: &str, dt: pb::tensor_proto::DataType, dims: &[i64]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            data_type: dt as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn onnx_node(op: &str, inputs: &[&str], output: &str, axis: Option<i64>) -> pb::NodeProto {
        pb::NodeProto {
            name: format!("{op}_{output}"),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: axis
                .map(|i| pb::AttributeProto {
                    name: "axis".into(),
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    i,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    /// `y = DQ(Q(x)) @ DQ(W)` as the Smart Turn graph has it: u8 activation with a non-zero
    /// zero point, int8 weight [8, 3] with per-column scales and zero zero points.
    fn tiny_qdq_graph() -> pb::ModelProto {
        use pb::tensor_proto::DataType;
        let mut x_scale = init("x_scale", DataType::Float, &[]);
        x_scale.float_data = vec![0.05];
        let mut x_zp = init("x_zp", DataType::Uint8, &[]);
        x_zp.int32_data = vec![131];
        let mut w = init("w", DataType::Int8, &[8, 3]);
        w.int32_data = (0..24).map(|i| (i * 37 % 255) - 127).collect();
        let mut w_scale = init("w_scale", DataType::Float, &[3]);
        w_scale.float_data = vec![0.01, 0.02, 0.003];
        let mut w_zp = init("w_zp", DataType::Int8, &[3]);
        w_zp.int32_data = vec![0; 3];
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                name: "tiny".into(),
                node: vec![
                    onnx_node("QuantizeLinear", &["x", "x_scale", "x_zp"], "xq", None),
                    onnx_node("DequantizeLinear", &["xq", "x_scale", "x_zp"], "xd", None),
                    onnx_node("DequantizeLinear", &["w", "w_scale", "w_zp"], "wd", Some(1)),
                    onnx_node("MatMul", &["xd", "wd"], "y", None),
                ],
                initializer: vec![x_scale, x_zp, w, w_scale, w_zp],
                input: vec![pb::ValueInfoProto {
                    name: "x".into(),
                    r#type: Some(pb::TypeProto {
                        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                            elem_type: DataType::Float as i32,
                            shape: None,
                        })),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                output: vec![pb::ValueInfoProto {
                    name: "y".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_proto(proto: &pb::ModelProto, fuse: bool, x: &[f32]) -> Vec<f32> {
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_proto_model(proto)
            .expect("parse")
            .with_input_fact(0, f32::fact([4, 8]).into())
            .expect("input fact");
        let mut typed = model.into_typed().expect("typed");
        if fuse {
            fuse_fake_quant(&mut typed).expect("fuse");
        }
        let plan = typed
            .into_optimized()
            .expect("optimize")
            .into_runnable()
            .expect("plan");
        f32_output(
            &plan
                .run(tvec!(Tensor::from_shape(&[4, 8], x).expect("x").into()))
                .expect("run"),
        )
    }

    #[test]
    fn integer_matmul_computes_the_quantized_product() {
        // Values across the whole u8 grid, both saturating ends included.
        let x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.45).collect();
        let published = tiny_qdq_graph();
        let want = run_proto(&published, false, &x);

        // Relabelling u8 as i8 changes no value at all.
        let mut signed = published.clone();
        assert_eq!(signed_activations(&mut signed), 1);
        assert_eq!(run_proto(&signed, false, &x), want);

        let mut integer = signed.clone();
        assert_eq!(integer_matmuls(&mut integer), 1);
        let ops: Vec<&str> = integer
            .graph
            .as_ref()
            .expect("graph")
            .node
            .iter()
            .map(|n| n.op_type.as_str())
            .collect();
        assert!(ops.contains(&"MatMulInteger"), "{ops:?}");
        assert!(!ops.contains(&"MatMul"), "{ops:?}");
        for fuse in [false, true] {
            let got = run_proto(&integer, fuse, &x);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                // Exact integer sums against f32 ones: equal to a few ulps.
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "integer {g} vs published {w}"
                );
            }
        }
        // A result that differs would show: the product is not trivially zero.
        assert!(want.iter().any(|v| v.abs() > 0.1), "{want:?}");
    }
}
