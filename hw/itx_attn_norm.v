// Attention normalisation, Lin et al. Eq. 12 as golden.attention.attention_output computes it, per query row:
//   den = to_acc(sum_j P_j)                          P beats (in_kind = 0): LANES probabilities each, in_first restarts
//   y   = den > 0 ? to_acc(round(num 2^F / den)) : 0 num beats (in_kind = 1): LANES values of num = P V each
//   out = R(y)                                       Eq. 10 per row, multiplier-shift (in_rmul, in_rsh, in_rmode)
// round() is golden round_div by in_rnd (itx_round codes), to_acc is golden.config.to_accumulator (itx_acc_reduce). A P
// beat takes one cycle and sends nothing; a num beat runs every lane's restoring divider (NW = ACC_BITS + FRAC_BITS
// quotient bits, one per cycle) and sends one beat of LANES OUT_BITS values. The Eq. 10 factors of the row come from
// the golden side (sim.poly.norm_vectors), as for itx_requant.
module itx_attn_norm #(
    parameter LANES     = 8,
    parameter IN_BITS   = 8,    // P
    parameter ACC_BITS  = 32,
    parameter OUT_BITS  = 8,
    parameter SATURATE  = 0,
    parameter MUL_BITS  = 31,
    parameter SH_BITS   = 6,
    parameter FRAC_BITS = 16,   // largest F (golden.attention: 0..16)
    parameter SUM_BITS  = ACC_BITS + 16   // exact row sum: up to 2^16 P beats
) (
    input  wire                        clk,
    input  wire                        rst,
    input  wire                        in_valid,
    output wire                        in_ready,
    input  wire                        in_kind,    // 0 P beat, 1 num beat
    input  wire                        in_first,   // P beat: the first of a row (the sum restarts)
    input  wire [LANES*IN_BITS-1:0]    in_p,       // signed
    input  wire [LANES*ACC_BITS-1:0]   in_num,     // signed
    input  wire [4:0]                  in_f,       // F, 0..FRAC_BITS
    input  wire [MUL_BITS-1:0]         in_rmul,    // Eq. 10 of the row (unsigned)
    input  wire [SH_BITS-1:0]          in_rsh,
    input  wire [1:0]                  in_rnd,
    input  wire [1:0]                  in_rmode,   // sim.requant.STAGE_MODES code
    input  wire                        in_last,
    output reg                         out_valid,
    input  wire                        out_ready,
    output reg  [LANES*OUT_BITS-1:0]   out_data,
    output reg                         out_last
);
    localparam NW = ACC_BITS + FRAC_BITS;        // |num| 2^F < 2^(ACC_BITS - 1 + FRAC_BITS)
    localparam YW = ACC_BITS + MUL_BITS + 2;
    reg                  busy;
    reg signed [SUM_BITS-1:0] sum;
    reg                  zero_q, last_q;
    reg  [1:0]           rnd_q, rmode_q;
    reg  [MUL_BITS-1:0]  rmul_q;
    reg  [SH_BITS-1:0]   rsh_q;
    wire [LANES-1:0]     done;
    assign in_ready = !busy && (!out_valid || out_ready);
    wire fire     = in_valid && in_ready;
    wire start    = fire && in_kind;
    wire fin      = busy && &done;               // all lanes start together and take NW cycles

    // sum of this beat's P lanes, exact
    reg signed [SUM_BITS-1:0] beat_sum;
    integer j;
    always @* begin
        beat_sum = {SUM_BITS{1'b0}};
        for (j = 0; j < LANES; j = j + 1)
            beat_sum = beat_sum + {{(SUM_BITS-IN_BITS){in_p[(j+1)*IN_BITS-1]}}, in_p[j*IN_BITS +: IN_BITS]};
    end
    /* verilator lint_off UNUSEDSIGNAL */
    wire                den_ovf;   // read by the testbench's coverage only
    /* verilator lint_on UNUSEDSIGNAL */
    wire [ACC_BITS-1:0] den;
    itx_acc_reduce #(.W(SUM_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_den (.x(sum), .y(den), .hit(den_ovf));
    wire den_pos = !den[ACC_BITS-1] && |den;

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            busy      <= 1'b0;
            sum       <= {SUM_BITS{1'b0}};
        end else begin
            if (out_valid && out_ready) out_valid <= 1'b0;
            if (fire && !in_kind) sum <= (in_first ? {SUM_BITS{1'b0}} : sum) + beat_sum;
            if (start) busy <= 1'b1;
            if (fin) begin
                busy      <= 1'b0;
                out_valid <= 1'b1;
                out_last  <= last_q;
            end
        end
        if (start) begin
            zero_q  <= !den_pos;
            last_q  <= in_last;
            rnd_q   <= in_rnd;
            rmode_q <= in_rmode;
            rmul_q  <= in_rmul;
            rsh_q   <= in_rsh;
        end
    end

    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            wire [ACC_BITS-1:0] x    = in_num[i*ACC_BITS +: ACC_BITS];
            wire [ACC_BITS-1:0] mag  = x[ACC_BITS-1] ? -x : x;   // |-2^(ACC_BITS-1)| fits unsigned
            reg                 neg_q;
            reg  [ACC_BITS-1:0] d_q;
            wire [NW-1:0]       q;
            wire [ACC_BITS-1:0] r;
            wire [NW:0]         yq;
            /* verilator lint_off PINCONNECTEMPTY */  // readiness is `busy`, shared by all lanes
            itx_divider #(.NW(NW), .DW(ACC_BITS)) u_div (
                .clk(clk), .rst(rst), .start(start), .n({{FRAC_BITS{1'b0}}, mag} << in_f),
                .d(den_pos ? den : {{(ACC_BITS-1){1'b0}}, 1'b1}), .ready(), .done(done[i]), .q(q), .r(r));
            /* verilator lint_on PINCONNECTEMPTY */
            itx_round #(.QW(NW)) u_round (
                .q(q), .neg(neg_q), .gt({r, 1'b0} > {1'b0, d_q}), .eq({r, 1'b0} == {1'b0, d_q}), .nz(r != 0),
                .rnd(rnd_q), .y(yq));
            /* verilator lint_off UNUSEDSIGNAL */
            wire                q_ovf;     // read by the testbench's coverage only
            wire [YW-1:0]       ys;        // |R(y)| <= 2^(OUT_BITS-1) - 1 (golden's Eq. 10 factors)
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] y;
            itx_acc_reduce #(.W(NW + 1), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_q (.x(yq), .y(y), .hit(q_ovf));
            itx_dyadic_mode #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_r (
                .x(zero_q ? {ACC_BITS{1'b0}} : y), .m(rmul_q), .sh(rsh_q), .rnd(rnd_q), .mode(rmode_q), .y(ys));
            always @(posedge clk) begin
                if (start) begin
                    neg_q <= x[ACC_BITS-1];
                    d_q   <= den_pos ? den : {{(ACC_BITS-1){1'b0}}, 1'b1};
                end
                if (fin) out_data[i*OUT_BITS +: OUT_BITS] <= ys[OUT_BITS-1:0];
            end
        end
    endgenerate
endmodule
