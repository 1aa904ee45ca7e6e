// Combinational multiplier-shift y = round(x * m / 2^sh), both stages of itx_requant (Eq. 8 scale matching, Eq. 10
// re-scaling). dbl = 0: one rounding by rnd (itx_round codes) of the whole product: exactly golden
// round_div(x * m, 2^sh) (dyadic, pow2 with m = 1; rnd = 3 is TFLite's single rounding). dbl = 1: gemmlowp's double
// rounding, TFLite MultiplyByQuantizedMultiplier(x, m, 31 - sh) = golden.tflite.multiply_by_quantized_multiplier:
// SRDHM rounds x m / 2^min(sh, 31) half up, then RoundingDivideByPOT rounds by the rest, sh - 31, with rnd (0,
// half away, for gemmlowp). sh <= 31 is TFLite's left-shift case, exact here (no int32 wrap of x 2^(31 - sh)).
module itx_dyadic #(
    parameter XW = 32,   // signed input width
    parameter MW = 31,   // unsigned multiplier width
    parameter SW = 6     // shift width: sh in 0 .. 2^SW - 1 (>= 5: the SRDHM shift 31 must fit)
) (
    input  wire [XW-1:0]    x,      // signed
    input  wire [MW-1:0]    m,      // unsigned
    input  wire [SW-1:0]    sh,
    input  wire [1:0]       rnd,
    input  wire             dbl,    // gemmlowp double rounding
    output wire [XW+MW+1:0] y       // signed
);
    localparam [SW-1:0] SRDHM_SH = 31;
    wire signed [XW+MW:0] p    = $signed(x) * $signed({1'b0, m});
    wire                  two  = dbl && sh > SRDHM_SH;
    wire [SW-1:0]         sh1  = two ? SRDHM_SH : sh;
    wire [1:0]            rnd1 = dbl ? 2'd3 : rnd;
    // |first| <= |p| + 1 < 2^(XW+MW): its top bit is a copy of the sign
    /* verilator lint_off UNUSEDSIGNAL */
    wire [XW+MW+1:0]      first;
    /* verilator lint_on UNUSEDSIGNAL */
    itx_round_shift #(.XW(XW + MW + 1), .SW(SW)) u_first (.x(p), .sh(sh1), .rnd(rnd1), .y(first));
    itx_round_shift #(.XW(XW + MW + 1), .SW(SW)) u_second (.x(first[XW+MW:0]), .sh(two ? sh - SRDHM_SH : {SW{1'b0}}),
                                                          .rnd(rnd), .y(y));
endmodule
