// Re-scaling (requantization) unit after the accumulators: one beat of LANES accumulator values in, LANES
// OUT_BITS values out, valid/ready on both sides. Per lane (all factors come from the golden side, per element):
//   a = round(round(x * mul / 2^sh) * mul2 / 2^sh2)  Eq. 8 scale matching, two dyadic multiplier-shifts: the
//                                             columns to one scale, then on to a coarser bias's (golden rounds twice)
//   t = acc(a + bias)                         the bias add in the accumulator: wrapped, or clipped if SATURATE
//   y = round(t * rmul / 2^rsh) (in_divide = 0) Eq. 10 re-scaling, multiplier-shift: "dyadic" (rmul, rsh) of
//                                             golden.quant.rescale_multiplier, or "pow2" (rmul = 1); one cycle
//   y = round(t / div)        (in_divide = 1) Eq. 10 re-scaling, "paper" ceil divisor: sequential divider,
//                                             ACC_BITS cycles per beat
// mul = 1, sh = 0 (and mul2 = 1, sh2 = 0, bias = 0) make the first lines the identity. Rounding: in_rnd (itx_round codes), one per beat;
// each line rounds once (itx_dyadic: the full product is shifted), unless its mode says otherwise: in_mmode (the
// first line's steps) and in_rmode (the multiplier-shift of the second), per beat: 0 one rounding by in_rnd, 1 tflite
// (gemmlowp SRDHM + RoundingDivideByPOT, double rounding), 2 tflite_single (TFLITE_SINGLE_ROUNDING: ties toward
// +infinity); (mul, sh) is then TFLite's (multiplier, 31 - shift). Same one cycle per beat in every mode.
// out_ovf flags a lane whose y was saturated to OUT_BITS (golden's re-scaling never needs it); t leaving the
// accumulator is the configured overflow, which golden computes too, not an error.
// The first step's result keeps ACC_BITS (Eq. 8 factors are <= 1, so it fits; other factors wrap there).
module itx_requant #(
    parameter LANES    = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,      // t: 0 wraps to ACC_BITS, 1 clips (golden's overflow "wrap" / "saturate")
    parameter OUT_BITS = 8,
    parameter MUL_BITS = 31,
    parameter SH_BITS  = 6
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire                        in_valid,
    output wire                        in_ready,
    input  wire [LANES*ACC_BITS-1:0]   in_data,
    input  wire [LANES*MUL_BITS-1:0]   in_mul,     // unsigned
    input  wire [LANES*SH_BITS-1:0]    in_sh,
    input  wire [LANES*MUL_BITS-1:0]   in_mul2,    // unsigned
    input  wire [LANES*SH_BITS-1:0]    in_sh2,
    input  wire [LANES*ACC_BITS-1:0]   in_bias,    // signed, already at the matched scale
    input  wire [LANES*MUL_BITS-1:0]   in_rmul,    // unsigned
    input  wire [LANES*SH_BITS-1:0]    in_rsh,
    input  wire [LANES*ACC_BITS-1:0]   in_div,     // unsigned, >= 1 when in_divide
    input  wire                        in_divide,
    input  wire [1:0]                  in_rnd,
    input  wire [1:0]                  in_mmode,   // 0 in_rnd, 1 tflite, 2 tflite_single (sim.requant.STAGE_MODES)
    input  wire [1:0]                  in_rmode,
    input  wire                        in_last,
    output reg                         out_valid,
    input  wire                        out_ready,
    output reg  [LANES*OUT_BITS-1:0]   out_data,
    output reg  [LANES-1:0]            out_ovf,
    output reg                         out_last
);
    localparam PW = ACC_BITS + MUL_BITS + 1;   // x * mul, signed
    localparam signed [PW+1:0] ACC_MAX = (1 << (ACC_BITS - 1)) - 1;
    localparam signed [PW+1:0] ACC_MIN = -(1 << (ACC_BITS - 1));
    localparam signed [PW:0]   OUT_MAX = (1 << (OUT_BITS - 1)) - 1;
    localparam signed [PW:0]   OUT_MIN = -(1 << (OUT_BITS - 1));

    reg              busy;     // a divide is in flight
    reg              last_q;
    reg  [1:0]       rnd_q;
    wire [LANES-1:0] div_done;
    assign in_ready = !busy && (!out_valid || out_ready);
    wire fire     = in_valid && in_ready;
    wire div_fin  = busy && &div_done;         // all lanes start together and take the same cycles

    // {overflow flag, y saturated to OUT_BITS}
    function [OUT_BITS:0] saturate;
        input signed [PW:0] y;
        begin
            if (y > OUT_MAX) saturate = {1'b1, OUT_MAX[OUT_BITS-1:0]};
            else if (y < OUT_MIN) saturate = {1'b1, OUT_MIN[OUT_BITS-1:0]};
            else saturate = {1'b0, y[OUT_BITS-1:0]};
        end
    endfunction

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            busy      <= 1'b0;
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;
            if (fire && in_divide) begin
                busy   <= 1'b1;
                last_q <= in_last;
                rnd_q  <= in_rnd;
            end
            if (fire && !in_divide) begin
                out_valid <= 1'b1;
                out_last  <= in_last;
            end
            if (div_fin) begin
                busy      <= 1'b0;
                out_valid <= 1'b1;
                out_last  <= last_q;
            end
        end
    end

    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            wire signed [ACC_BITS-1:0] x = in_data[i*ACC_BITS +: ACC_BITS];
            /* verilator lint_off UNUSEDSIGNAL */  // a1 above ACC_BITS: sign copies for factors <= 1 (else wrapped)
            wire        [PW:0]         a1;
            /* verilator lint_on UNUSEDSIGNAL */
            wire        [PW:0]         a;
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_match (
                .x(x), .m(in_mul[i*MUL_BITS +: MUL_BITS]), .sh(in_sh[i*SH_BITS +: SH_BITS]), .rnd(in_rnd),
                .mode(in_mmode), .y(a1));
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_match2 (
                .x(a1[ACC_BITS-1:0]), .m(in_mul2[i*MUL_BITS +: MUL_BITS]), .sh(in_sh2[i*SH_BITS +: SH_BITS]),
                .rnd(in_rnd), .mode(in_mmode), .y(a));
            wire signed [PW+1:0]       t     = $signed(a) + $signed({{(PW+2-ACC_BITS){in_bias[(i+1)*ACC_BITS-1]}},
                                                                       in_bias[i*ACC_BITS +: ACC_BITS]});
            wire        [ACC_BITS-1:0] tn    = SATURATE == 0 ? t[ACC_BITS-1:0]
                                           : t > ACC_MAX ? ACC_MAX[ACC_BITS-1:0]
                                           : t < ACC_MIN ? ACC_MIN[ACC_BITS-1:0] : t[ACC_BITS-1:0];

            wire [PW:0] ys;     // any rmul, rsh: |t rmul| < 2^(PW-1), saturated below
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_rescale (
                .x(tn), .m(in_rmul[i*MUL_BITS +: MUL_BITS]), .sh(in_rsh[i*SH_BITS +: SH_BITS]), .rnd(in_rnd),
                .mode(in_rmode), .y(ys));

            reg                 neg_q;
            reg  [ACC_BITS-1:0] d_q;
            wire [ACC_BITS-1:0] q, r;
            wire [ACC_BITS:0]   yd;
            /* verilator lint_off PINCONNECTEMPTY */  // readiness is `busy`, shared by all lanes
            itx_divider #(.NW(ACC_BITS), .DW(ACC_BITS)) u_div (
                .clk(clk), .rst(rst), .start(fire && in_divide), .n(tn[ACC_BITS-1] ? -tn : tn),
                .d(in_div[i*ACC_BITS +: ACC_BITS]), .ready(), .done(div_done[i]), .q(q), .r(r));
            /* verilator lint_on PINCONNECTEMPTY */
            itx_round #(.QW(ACC_BITS)) u_round (
                .q(q), .neg(neg_q), .gt({r, 1'b0} > {1'b0, d_q}), .eq({r, 1'b0} == {1'b0, d_q}), .nz(r != 0),
                .rnd(rnd_q), .y(yd));

            wire [OUT_BITS:0] sat_s = saturate(ys);
            wire [OUT_BITS:0] sat_d = saturate({{(PW-ACC_BITS){yd[ACC_BITS]}}, yd});
            always @(posedge clk) begin
                if (fire) begin
                    neg_q <= tn[ACC_BITS-1];
                    d_q   <= in_div[i*ACC_BITS +: ACC_BITS];
                end
                if (fire && !in_divide) begin
                    out_data[i*OUT_BITS +: OUT_BITS] <= sat_s[OUT_BITS-1:0];
                    out_ovf[i] <= sat_s[OUT_BITS];
                end
                if (div_fin) begin
                    out_data[i*OUT_BITS +: OUT_BITS] <= sat_d[OUT_BITS-1:0];
                    out_ovf[i] <= sat_d[OUT_BITS];
                end
            end
        end
    endgenerate
endmodule
