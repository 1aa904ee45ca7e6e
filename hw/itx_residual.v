// Residual adder (IntTransformer.residual = act(add(x, z))): Eq. 8 scale matching of both operands to the row's
// s_min by dyadic multiplier-shifts, the sum in the accumulator (golden.ops.add), then Alg. 1's per-row re-scale
// (itx_row_rescale, Eq. 10 dyadic or pow2). One beat = LANES elements of a row of cfg_n elements (lanes past the
// row's end are ignored and come out 0); the factors (xm, xsh), (zm, zsh) = golden.quant.dyadic_factors(s_x, s_min),
// (s_z, s_min) are per beat (constant along a row for row/batch granularity); cfg_n, in_rnd and in_pow2 are taken
// with a row's first beat. Output: one beat per input beat of the row, in_bits wide, with the row's factor.
module itx_residual #(
    parameter LANES    = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter OUT_BITS = 8,
    parameter MAX_N    = 1024,
    parameter MUL_BITS = 31,
    parameter SH_BITS  = 6
) (
    input  wire                      clk,
    input  wire                      rst,          // synchronous; legal mid-stream
    input  wire [$clog2(MAX_N+1)-1:0] cfg_n,       // elements per row, 1..MAX_N
    input  wire                      in_valid,
    output wire                      in_ready,
    input  wire [LANES*IN_BITS-1:0]  in_x,
    input  wire [LANES*IN_BITS-1:0]  in_z,
    input  wire [MUL_BITS-1:0]       in_xm,
    input  wire [SH_BITS-1:0]        in_xsh,
    input  wire [MUL_BITS-1:0]       in_zm,
    input  wire [SH_BITS-1:0]        in_zsh,
    input  wire [1:0]                in_rnd,
    input  wire                      in_pow2,
    output wire                      out_valid,
    input  wire                      out_ready,
    output wire [LANES*OUT_BITS-1:0] out_data,
    output wire                      out_last,
    output wire [MUL_BITS-1:0]       out_m,
    output wire [SH_BITS-1:0]        out_sh
);
    localparam NB = $clog2(MAX_N + 1);
    localparam VW = IN_BITS + 1 < ACC_BITS ? IN_BITS + 1 : ACC_BITS;   // golden: the sum reduced only if it can leave
    localparam DEPTH = (MAX_N + LANES - 1) / LANES;

    reg  [NB-1:0] n_len, base;   // row length and the element index of this beat's lane 0
    reg  [1:0]    rnd;
    reg           pow2, busy;
    wire [NB-1:0] n_now    = busy ? n_len : cfg_n;
    wire [1:0]    rnd_now  = busy ? rnd : in_rnd;
    wire          pow2_now = busy ? pow2 : in_pow2;
    localparam [NB+1:0] LANES_N = LANES[NB+1:0];
    wire [NB+1:0] next     = {2'b0, base} + LANES_N;
    wire          last     = next >= {2'b0, n_now};
    wire          rs_ready;
    assign in_ready = rs_ready;
    wire fire = in_valid && in_ready;

    wire [LANES*VW-1:0] v;
    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            localparam [NB+1:0] LANE = i;
            wire keep = LANE + {2'b0, base} < {2'b0, n_now};   // lanes past the row's end are ignored
            /* verilator lint_off UNUSEDSIGNAL */
            wire [IN_BITS+MUL_BITS+1:0] mx, mz;   // |x m / 2^sh| <= |x|: the low IN_BITS hold it
            /* verilator lint_on UNUSEDSIGNAL */
            itx_dyadic #(.XW(IN_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_x (.x(in_x[i*IN_BITS +: IN_BITS]), .m(in_xm),
                                                                      .sh(in_xsh), .rnd(rnd_now), .dbl(1'b0), .y(mx));
            itx_dyadic #(.XW(IN_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_z (.x(in_z[i*IN_BITS +: IN_BITS]), .m(in_zm),
                                                                      .sh(in_zsh), .rnd(rnd_now), .dbl(1'b0), .y(mz));
            wire [IN_BITS:0] s = keep ? {mx[IN_BITS-1], mx[IN_BITS-1:0]} + {mz[IN_BITS-1], mz[IN_BITS-1:0]}
                                      : {(IN_BITS+1){1'b0}};
            /* verilator lint_off PINCONNECTEMPTY */   // hit: coverage is sampled from golden's values
            itx_acc_reduce #(.W(IN_BITS + 1), .ACC_BITS(VW), .SATURATE(SATURATE)) u_acc (.x(s),
                                                                                      .y(v[i*VW +: VW]), .hit());
            /* verilator lint_on PINCONNECTEMPTY */
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            base <= 0;
        end else if (fire) begin
            if (!busy) begin
                n_len <= cfg_n;
                rnd   <= in_rnd;
                pow2  <= in_pow2;
            end
            busy <= !last;
            base <= last ? {NB{1'b0}} : next[NB-1:0];
        end
    end

    itx_row_rescale #(.LANES(LANES), .VW(VW), .OUT_BITS(OUT_BITS), .DEPTH(DEPTH), .MUL_BITS(MUL_BITS),
                      .SH_BITS(SH_BITS)) u_rescale (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(rs_ready), .in_data(v), .in_last(last),
        .in_pow2(pow2_now), .in_rnd(rnd_now), .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
        .out_last(out_last), .out_m(out_m), .out_sh(out_sh));
endmodule
