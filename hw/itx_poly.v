// Poly unit, Lin et al. Eq. 11 as golden.attention.poly computes it: per score x of a query row,
//   y = to_acc(M2(M1(x)) + b)                 Eq. 8: match along the keys (M1, per lane), then to b's common scale
//   r = keep ? ReLU(y) : 0                      (M2, per row); b arrives matched (a parameter, like itx_requant's bias)
//   q = R(r)                                    Eq. 10 to OUT_BITS before the power, factors (rmul, rsh) per row
//   p = to_acc(M4(to_acc(q^N)) + |delta|)       Eq. 8 again (M4, per row); |delta| arrives matched
//   out = keep ? p : 0                          masked scores are exactly 0 (no |delta|)
// Every M and R is an itx_dyadic_mode multiplier-shift (in_mmode for the M stages, in_rmode for R, in_rnd rounding),
// every to_acc is golden.config.to_accumulator (itx_acc_reduce: wrap, or saturate if SATURATE). One beat = LANES
// scores of one row; one beat per cycle, one cycle of latency (output register). Row statistics (the factors) come
// from the golden side (sim.poly), the RTL does all per-element arithmetic.
module itx_poly #(
    parameter LANES    = 8,
    parameter ACC_BITS = 32,
    parameter OUT_BITS = 8,    // Eq. 10 target before the power (IntConfig.bits)
    parameter N        = 3,    // degree of the polynomial
    parameter SATURATE = 0,
    parameter MUL_BITS = 31,
    parameter SH_BITS  = 6
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire                        in_valid,
    output wire                        in_ready,
    input  wire [LANES*ACC_BITS-1:0]   in_x,       // scores, signed
    input  wire [LANES-1:0]            in_keep,    // 1 = attend
    input  wire [LANES*MUL_BITS-1:0]   in_m1,      // M1 per lane (unsigned)
    input  wire [LANES*SH_BITS-1:0]    in_sh1,
    input  wire [MUL_BITS-1:0]         in_m2,      // M2, per row
    input  wire [SH_BITS-1:0]          in_sh2,
    input  wire [ACC_BITS-1:0]         in_b,       // b matched, signed
    input  wire [MUL_BITS-1:0]         in_rmul,    // R, per row
    input  wire [SH_BITS-1:0]          in_rsh,
    input  wire [MUL_BITS-1:0]         in_m4,      // M4, per row
    input  wire [SH_BITS-1:0]          in_sh4,
    input  wire [ACC_BITS-1:0]         in_delta,   // |delta| matched, signed (>= 0)
    input  wire [1:0]                  in_rnd,     // itx_round code
    input  wire [1:0]                  in_mmode,   // sim.requant.STAGE_MODES code of M1, M2, M4
    input  wire [1:0]                  in_rmode,   // and of R
    input  wire                        in_last,
    output reg                         out_valid,
    input  wire                        out_ready,
    output reg  [LANES*ACC_BITS-1:0]   out_data,   // Poly(x), signed, in the accumulator
    output reg                         out_last
);
    localparam YW = ACC_BITS + MUL_BITS + 2;   // itx_dyadic_mode output width
    localparam PW = N * OUT_BITS;              // q^N, exact
    assign in_ready = !out_valid || out_ready;
    wire fire = in_valid && in_ready;

    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (fire) out_valid <= 1'b1;
        else if (out_ready) out_valid <= 1'b0;
        if (fire) out_last <= in_last;
    end

    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            // factors <= 1 (matching to the minimum scale) keep |M(x)| <= |x|; R keeps q <= 2^(OUT_BITS-1) - 1
            /* verilator lint_off UNUSEDSIGNAL */
            wire [YW-1:0] y1, y2, yq, y4;
            /* verilator lint_on UNUSEDSIGNAL */
            /* verilator lint_off UNUSEDSIGNAL */
            wire                ovf_b, ovf_p, ovf_d;   // read by the testbench's coverage only
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] yb, pw_acc, pd;
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_m1 (
                .x(in_x[i*ACC_BITS +: ACC_BITS]), .m(in_m1[i*MUL_BITS +: MUL_BITS]), .sh(in_sh1[i*SH_BITS +: SH_BITS]),
                .rnd(in_rnd), .mode(in_mmode), .y(y1));
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_m2 (
                .x(y1[ACC_BITS-1:0]), .m(in_m2), .sh(in_sh2), .rnd(in_rnd), .mode(in_mmode), .y(y2));
            itx_acc_reduce #(.W(ACC_BITS + 1), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_add_b (
                .x({y2[ACC_BITS-1], y2[ACC_BITS-1:0]} + {in_b[ACC_BITS-1], in_b}), .y(yb), .hit(ovf_b));
            wire [ACC_BITS-1:0] r = in_keep[i] && !yb[ACC_BITS-1] ? yb : {ACC_BITS{1'b0}};
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_r (
                .x(r), .m(in_rmul), .sh(in_rsh), .rnd(in_rnd), .mode(in_rmode), .y(yq));
            wire [OUT_BITS-1:0] q = yq[OUT_BITS-1:0];
            wire [PW-1:0] pows [0:N-1];   // q^(k+1)
            genvar k;
            for (k = 0; k < N; k = k + 1) begin : g_pow
                if (k == 0) begin : g_one
                    assign pows[k] = {{(PW-OUT_BITS){1'b0}}, q};
                end else begin : g_mul
                    assign pows[k] = pows[k-1] * {{(PW-OUT_BITS){1'b0}}, q};
                end
            end
            localparam PAW = PW + 1 > ACC_BITS ? PW + 1 : ACC_BITS;
            itx_acc_reduce #(.W(PAW), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_pow (
                .x({{(PAW-PW){1'b0}}, pows[N-1]}), .y(pw_acc), .hit(ovf_p));
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_m4 (
                .x(pw_acc), .m(in_m4), .sh(in_sh4), .rnd(in_rnd), .mode(in_mmode), .y(y4));
            itx_acc_reduce #(.W(ACC_BITS + 1), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_add_d (
                .x({y4[ACC_BITS-1], y4[ACC_BITS-1:0]} + {in_delta[ACC_BITS-1], in_delta}), .y(pd), .hit(ovf_d));
            always @(posedge clk)
                if (fire) out_data[i*ACC_BITS +: ACC_BITS] <= in_keep[i] ? pd : {ACC_BITS{1'b0}};
        end
    endgenerate
endmodule
