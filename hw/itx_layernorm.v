// L1 LayerNorm (Lin et al. Eq. 13, golden.layernorm.l1_layernorm) of rows of cfg_n elements, LANES a beat, then
// Alg. 1's per-row re-scale (itx_row_rescale). Per row, every step in the accumulator (itx_acc_reduce: wrap or
// saturate, golden.config.to_accumulator):
//   mu  = round(total / n), total = sum x                       pass 1 (input) + one sequential division
//   c   = x - mu, l1 = sum |c|                                  pass 2 over the row buffer
//   fixed (cfg_paper = 0): y = round(c n 2^F / l1)              pass 3, one sequential division per lane
//   paper (cfg_paper = 1): y = round(c / mad), mad = round(l1 / n)   (one more row division first)
//   y = 0 where the divisor is <= 0 (a constant row: zero deviation)
//   o   = M(y g) + M(b)                                         g y at scale C 2^F s_g and b matched to their
//                                                               minimum by dyadic (m, sh) = cfg_gm/gsh, cfg_bm/bsh
// then y_out = round(o m / 2^sh) per row (dyadic or pow2, in_pow2). g, b stream with x (one gain and bias per
// feature). cfg_* and in_rnd / in_pow2 are taken with a row's first beat; lanes past the row's end are ignored and
// come out 0. Rounding in_rnd: itx_round codes (0 half_away, 1 half_even, 2 floor) for every division and shift.
module itx_layernorm #(
    parameter LANES      = 8,
    parameter IN_BITS    = 8,
    parameter ACC_BITS   = 32,
    parameter SATURATE   = 0,
    parameter OUT_BITS   = 8,
    parameter PARAM_BITS = 16,
    parameter MAX_N      = 1024,
    parameter MUL_BITS   = 31,
    parameter SH_BITS    = 6
) (
    input  wire                         clk,
    input  wire                         rst,          // synchronous; legal mid-stream
    input  wire [$clog2(MAX_N+1)-1:0]   cfg_n,        // elements per row, 1..MAX_N
    input  wire [4:0]                   cfg_f,        // F, 0..16 (fixed division)
    input  wire                         cfg_paper,
    input  wire [MUL_BITS-1:0]          cfg_gm,
    input  wire [SH_BITS-1:0]           cfg_gsh,
    input  wire [MUL_BITS-1:0]          cfg_bm,
    input  wire [SH_BITS-1:0]           cfg_bsh,
    input  wire [1:0]                   in_rnd,
    input  wire                         in_pow2,
    input  wire                         in_valid,
    output wire                         in_ready,
    input  wire [LANES*IN_BITS-1:0]     in_x,
    input  wire [LANES*PARAM_BITS-1:0]  in_g,
    input  wire [LANES*PARAM_BITS-1:0]  in_b,
    output wire                         out_valid,
    input  wire                         out_ready,
    output wire [LANES*OUT_BITS-1:0]    out_data,
    output wire                         out_last,
    output wire [MUL_BITS-1:0]          out_m,
    output wire [SH_BITS-1:0]           out_sh
);
    localparam NB    = $clog2(MAX_N + 1);
    localparam DEPTH = (MAX_N + LANES - 1) / LANES;
    localparam AW    = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam SUMW  = IN_BITS + NB + 1;           // sum x, exact
    localparam L1W   = ACC_BITS + NB + 1;          // sum |c|, exact
    localparam NUMW  = ACC_BITS + NB + 16;         // c n 2^F, exact (|c| <= 2^(ACC-1), n < 2^NB, F <= 16)
    localparam [2:0] S_IN = 3'd0, S_MU = 3'd1, S_L1 = 3'd2, S_DEN = 3'd3, S_MAD = 3'd4, S_DIV = 3'd5, S_PUSH = 3'd6;
    localparam [NB+1:0] LANES_N = LANES[NB+1:0];

    reg  [2:0]                  state;
    reg  [LANES*IN_BITS-1:0]    xbuf [0:DEPTH-1];
    reg  [LANES*PARAM_BITS-1:0] gbuf [0:DEPTH-1];
    reg  [LANES*PARAM_BITS-1:0] bbuf [0:DEPTH-1];
    reg  [AW-1:0]               ptr, nbeat;
    reg  [NB-1:0]               n_len, base;
    reg  [4:0]                  f;
    reg                         paper, pow2, div_go, rd_go;
    reg  [1:0]                  rnd;
    reg  [MUL_BITS-1:0]         gm, bm;
    reg  [SH_BITS-1:0]          gsh, bsh;
    reg  signed [SUMW-1:0]      sum;
    reg         [L1W-1:0]       l1sum;
    reg  signed [ACC_BITS:0]    mu;
    reg  signed [ACC_BITS-1:0]  den;

    wire          first   = state == S_IN && ptr == 0;
    wire [NB-1:0] n_now   = first ? cfg_n : n_len;
    wire [NB+1:0] next    = {2'b0, base} + LANES_N;
    wire          last    = next >= {2'b0, n_now};
    assign in_ready = state == S_IN;
    wire fire = in_valid && in_ready;
    wire [LANES*IN_BITS-1:0] xrow = fire ? in_x : xbuf[ptr];

    // ---- per lane: keep, c = x - mu, the numerator, y, g y, o ----------------------------------------------------
    wire [LANES*ACC_BITS-1:0] o_all;
    /* verilator lint_off UNUSEDSIGNAL */   // every lane finishes in the same cycle: lane 0 stands for all
    wire [LANES-1:0]          lane_done;
    /* verilator lint_on UNUSEDSIGNAL */
    reg  signed [SUMW-1:0]    beat_sum;
    reg         [L1W-1:0]     beat_l1;
    wire [LANES*ACC_BITS-1:0] c_all;
    wire [LANES-1:0]          keep;
    integer j;
    always @(*) begin
        beat_sum = sum;
        beat_l1  = l1sum;
        for (j = 0; j < LANES; j = j + 1) begin
            if (keep[j]) begin
                beat_sum = beat_sum + {{(SUMW-IN_BITS){xrow[j*IN_BITS+IN_BITS-1]}}, xrow[j*IN_BITS +: IN_BITS]};
                beat_l1  = beat_l1 + {{(L1W-ACC_BITS){1'b0}}, c_all[j*ACC_BITS+ACC_BITS-1] ?
                                      -c_all[j*ACC_BITS +: ACC_BITS] : c_all[j*ACC_BITS +: ACC_BITS]};
            end
        end
    end

    wire signed [ACC_BITS-1:0] total, l1;
    /* verilator lint_off PINCONNECTEMPTY */   // hits: coverage is sampled from golden's values
    itx_acc_reduce #(.W(SUMW), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_total (.x(sum), .y(total), .hit());
    itx_acc_reduce #(.W(L1W), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_l1 (.x(l1sum), .y(l1), .hit());
    /* verilator lint_on PINCONNECTEMPTY */

    // the row divisions: mu = round(total / n), mad = round(l1 / n)
    wire              rd_done;
    wire [ACC_BITS:0] rd_y;
    itx_round_divider #(.NW(ACC_BITS), .DW(NB)) u_row_div (.clk(clk), .rst(rst), .start(rd_go),
                                                           .n(state == S_MU ? total : l1), .d(n_len), .rnd(rnd),
                                                           .done(rd_done), .y(rd_y));
    wire den_pos = !den[ACC_BITS-1] && den != 0;

    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            localparam [NB+1:0] LANE = i;
            assign keep[i] = LANE + {2'b0, base} < {2'b0, n_now};
            wire signed [ACC_BITS+1:0] cw = {{(ACC_BITS+2-IN_BITS){xrow[i*IN_BITS+IN_BITS-1]}},
                                             xrow[i*IN_BITS +: IN_BITS]} - {mu[ACC_BITS], mu};
            wire signed [ACC_BITS-1:0] c;
            /* verilator lint_off PINCONNECTEMPTY */
            itx_acc_reduce #(.W(ACC_BITS + 2), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_c (.x(cw), .y(c), .hit());
            /* verilator lint_on PINCONNECTEMPTY */
            assign c_all[i*ACC_BITS +: ACC_BITS] = keep[i] ? c : {ACC_BITS{1'b0}};
            // numerator: c n 2^F (fixed) or c (paper); exact
            wire signed [NUMW-1:0] cn  = $signed({{(NUMW-ACC_BITS){c[ACC_BITS-1]}}, c}) *
                                         $signed({{(NUMW-NB){1'b0}}, n_len});
            wire signed [NUMW-1:0] num = paper ? {{(NUMW-ACC_BITS){c[ACC_BITS-1]}}, c} : cn <<< f;
            wire [NUMW:0] q;
            itx_round_divider #(.NW(NUMW), .DW(ACC_BITS)) u_div (.clk(clk), .rst(rst), .start(div_go), .n(num),
                                                               .d(den_pos ? den : {{(ACC_BITS-1){1'b0}}, 1'b1}),
                                                               .rnd(rnd), .done(lane_done[i]), .y(q));
            wire signed [ACC_BITS-1:0] y, t, o;
            /* verilator lint_off PINCONNECTEMPTY */
            itx_acc_reduce #(.W(NUMW + 1), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_y (.x(q), .y(y), .hit());
            /* verilator lint_on PINCONNECTEMPTY */
            wire signed [ACC_BITS-1:0]          yk = den_pos ? y : {ACC_BITS{1'b0}};
            wire signed [ACC_BITS+PARAM_BITS-1:0] yg = yk * $signed(gbuf[ptr][i*PARAM_BITS +: PARAM_BITS]);
            /* verilator lint_off PINCONNECTEMPTY */
            itx_acc_reduce #(.W(ACC_BITS + PARAM_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_t (.x(yg),
                                                                                                    .y(t), .hit());
            /* verilator lint_on PINCONNECTEMPTY */
            /* verilator lint_off UNUSEDSIGNAL */   // |t m / 2^sh| <= |t|, |b m / 2^sh| <= |b|: the low bits hold them
            wire [ACC_BITS+MUL_BITS+1:0]   a;
            wire [PARAM_BITS+MUL_BITS+1:0] bb;
            /* verilator lint_on UNUSEDSIGNAL */
            itx_dyadic #(.XW(ACC_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_ga (.x(t), .m(gm), .sh(gsh), .rnd(rnd),
                                                                         .dbl(1'b0), .y(a));
            itx_dyadic #(.XW(PARAM_BITS), .MW(MUL_BITS), .SW(SH_BITS)) u_bb (
                .x(bbuf[ptr][i*PARAM_BITS +: PARAM_BITS]), .m(bm), .sh(bsh), .rnd(rnd), .dbl(1'b0), .y(bb));
            wire signed [ACC_BITS+1:0] ow = {a[ACC_BITS], a[ACC_BITS:0]} +
                                            {{(ACC_BITS+1-PARAM_BITS){bb[PARAM_BITS]}}, bb[PARAM_BITS:0]};
            /* verilator lint_off PINCONNECTEMPTY */
            itx_acc_reduce #(.W(ACC_BITS + 2), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_o (.x(ow), .y(o), .hit());
            /* verilator lint_on PINCONNECTEMPTY */
            assign o_all[i*ACC_BITS +: ACC_BITS] = keep[i] ? o : {ACC_BITS{1'b0}};
        end
    endgenerate

    // ---- control -----------------------------------------------------------------------------------------------
    wire rs_ready;
    wire push   = state == S_PUSH;
    wire step   = fire || state == S_L1 || (push && rs_ready);   // a beat of pass 1, 2 or 3 is done
    wire at_end = state == S_IN ? last : ptr == nbeat;
    always @(posedge clk) begin
        div_go <= 1'b0;
        rd_go  <= 1'b0;
        if (rst) begin
            state <= S_IN;
            ptr   <= 0;
            base  <= 0;
            sum   <= 0;
            l1sum <= 0;
        end else begin
            case (state)
                S_IN: if (fire) begin
                    xbuf[ptr] <= in_x;
                    gbuf[ptr] <= in_g;
                    bbuf[ptr] <= in_b;
                    sum       <= beat_sum;
                    if (first) begin
                        n_len <= cfg_n;
                        f     <= cfg_f;
                        paper <= cfg_paper;
                        gm    <= cfg_gm;
                        gsh   <= cfg_gsh;
                        bm    <= cfg_bm;
                        bsh   <= cfg_bsh;
                        rnd   <= in_rnd;
                        pow2  <= in_pow2;
                    end
                    if (last) begin
                        nbeat <= ptr;
                        rd_go <= 1'b1;
                        state <= S_MU;
                    end
                end
                S_MU: if (rd_done) begin
                    mu    <= rd_y;
                    state <= S_L1;
                end
                S_L1: begin               // one beat a cycle: l1 += sum |x - mu|
                    l1sum <= beat_l1;
                    if (ptr == nbeat) state <= S_DEN;
                end
                S_DEN: begin              // l1 is final: the divisor is l1 (fixed) or round(l1 / n) (paper)
                    den    <= l1;
                    rd_go  <= paper;
                    div_go <= !paper;
                    state  <= paper ? S_MAD : S_DIV;
                end
                S_MAD: if (rd_done) begin
                    den    <= rd_y[ACC_BITS-1:0];   // |round(l1 / n)| <= |l1|
                    div_go <= 1'b1;
                    state  <= S_DIV;
                end
                S_DIV: if (lane_done[0]) state <= S_PUSH;   // all lanes start together and take NUMW cycles
                default: if (rs_ready) begin             // S_PUSH: o of this beat into the re-scale unit
                    if (ptr == nbeat) begin
                        sum   <= 0;
                        l1sum <= 0;
                        state <= S_IN;
                    end else begin
                        div_go <= 1'b1;
                        state  <= S_DIV;
                    end
                end
            endcase
            if (step) begin           // the beat pointer of every pass: to the next beat, or back to the first
                ptr  <= at_end ? {AW{1'b0}} : ptr + 1'b1;
                base <= at_end ? {NB{1'b0}} : next[NB-1:0];
            end
        end
    end

    itx_row_rescale #(.LANES(LANES), .VW(ACC_BITS), .OUT_BITS(OUT_BITS), .DEPTH(DEPTH), .MUL_BITS(MUL_BITS),
                      .SH_BITS(SH_BITS)) u_rescale (
        .clk(clk), .rst(rst), .in_valid(push), .in_ready(rs_ready), .in_data(o_all), .in_last(ptr == nbeat),
        .in_pow2(pow2), .in_rnd(rnd), .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data),
        .out_last(out_last), .out_m(out_m), .out_sh(out_sh));
endmodule
