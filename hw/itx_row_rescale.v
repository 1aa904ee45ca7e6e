// Alg. 1's re-scale of one row (Eq. 10, granularity "row", golden.quant.rescale): buffers a row of signed VW-bit
// accumulator values, finds big = max|v|, chooses the row's factor and streams y = round(v m / 2^sh) in OUT_BITS.
//   dyadic (cfg_pow2 = 0): golden.quant.rescale_multiplier, m = floor(q 2^sh / big) in [2^30, 2^31), one
//     sequential division of q 2^sh0 (sh0 = floor_log2(big) + 30 - floor_log2(q)) per row; rows that fit: (1, 0)
//   pow2 (cfg_pow2 = 1): s_hat the next power of two >= ceil(big / q): m = 1, sh = the least k with q 2^k >= big
// q = 2^(OUT_BITS-1) - 1. A row is in_last-terminated; the producer zeroes padding lanes (they come out 0).
// cfg_pow2 and in_rnd are taken with the row's last beat. out_m / out_sh: the row's factor (its scale is
// s m 2^-sh), valid with every output beat. Cycles per row: beats in, then NW + 2 (dyadic, big > q) or 1, then
// beats out; the next row is accepted once the last output beat is taken.
module itx_row_rescale #(
    parameter LANES    = 8,
    parameter VW       = 32,      // signed value width
    parameter OUT_BITS = 8,
    parameter DEPTH    = 128,     // beats per row at most
    parameter MUL_BITS = 31,
    parameter SH_BITS  = 6
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      in_valid,
    output wire                      in_ready,
    input  wire [LANES*VW-1:0]       in_data,
    input  wire                      in_last,
    input  wire                      in_pow2,
    input  wire [1:0]                in_rnd,
    output reg                       out_valid,
    input  wire                      out_ready,
    output reg  [LANES*OUT_BITS-1:0] out_data,
    output reg                       out_last,
    output reg  [MUL_BITS-1:0]       out_m,
    output reg  [SH_BITS-1:0]        out_sh
);
    localparam AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam LQ = OUT_BITS - 2;                       // floor_log2(q)
    localparam NW = VW + 30;                            // q 2^sh0 < 2^(floor_log2(big) + 31) <= 2^(VW + 30)
    localparam integer SH_OFF_I = 30 - LQ;
    localparam [SH_BITS-1:0] SH_OFF = SH_OFF_I[SH_BITS-1:0];   // sh0 = floor_log2(big) + SH_OFF
    localparam [VW-1:0] Q = (1 << (OUT_BITS - 1)) - 1;
    localparam [1:0] S_IN = 2'd0, S_DIV = 2'd1, S_FAC = 2'd2, S_OUT = 2'd3;

    reg  [1:0]          state;
    reg  [LANES*VW-1:0] mem [0:DEPTH-1];
    reg  [AW-1:0]       wp, rp, nbeat;
    reg  [VW-1:0]       big;                            // max|v| of the row so far (|v| <= 2^(VW-1) fits)
    reg                 pow2;
    reg  [1:0]          rnd;
    reg  [MUL_BITS-1:0] m_r;                            // the row's factor, copied into every output beat
    reg  [SH_BITS-1:0]  sh_r;
    assign in_ready = state == S_IN;
    wire fire = in_valid && in_ready;

    // max|v| over this beat's lanes and the row so far
    reg  [VW-1:0] beat_big;
    integer j;
    always @(*) begin
        beat_big = big;
        for (j = 0; j < LANES; j = j + 1)
            if ((in_data[j*VW+VW-1] ? -in_data[j*VW +: VW] : in_data[j*VW +: VW]) > beat_big)
                beat_big = in_data[j*VW+VW-1] ? -in_data[j*VW +: VW] : in_data[j*VW +: VW];
    end

    // floor_log2(big) and the pow2 shift: the least k with q 2^k >= big
    reg [SH_BITS-1:0] lg, k2;
    integer b;
    always @(*) begin
        lg = 0;
        for (b = 0; b < VW; b = b + 1)
            if (big[b]) lg = b[SH_BITS-1:0];
        k2 = 0;
        for (b = VW; b >= 0; b = b - 1)
            if ({{(NW-VW){1'b0}}, Q} << b >= {{(NW-VW){1'b0}}, big}) k2 = b[SH_BITS-1:0];
    end
    wire            fits = big <= Q;
    wire [SH_BITS-1:0] sh0 = lg + SH_OFF;
    reg             div_busy;
    wire            div_done;
    wire [NW-1:0]   quo;
    wire [VW-1:0]   rem;
    /* verilator lint_off PINCONNECTEMPTY */
    itx_divider #(.NW(NW), .DW(VW)) u_div (.clk(clk), .rst(rst), .start(state == S_DIV && !div_busy),
                                            .n({{(NW-VW){1'b0}}, Q} << sh0), .d(big), .ready(), .done(div_done),
                                            .q(quo), .r(rem));
    /* verilator lint_on PINCONNECTEMPTY */
    // golden: sh0, plus one where q 2^sh0 / big < 2^30; then m = floor(q 2^sh / big) = 2 quo + (2 rem >= big)
    wire low = quo < (1 << 30);
    wire [MUL_BITS-1:0] m_div = low ? {quo[MUL_BITS-2:0], {rem, 1'b0} >= {1'b0, big}} : quo[MUL_BITS-1:0];

    always @(posedge clk) begin
        if (rst) begin
            state     <= S_IN;
            wp        <= 0;
            big       <= 0;
            div_busy  <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            case (state)
                S_IN: if (fire) begin
                    mem[wp] <= in_data;
                    big     <= beat_big;
                    if (in_last) begin
                        nbeat <= wp;
                        wp    <= 0;
                        pow2  <= in_pow2;
                        rnd   <= in_rnd;
                        state <= S_FAC;
                    end else begin
                        wp <= wp + 1'b1;
                    end
                end
                S_FAC: begin               // big is final: choose the factor
                    rp <= 0;
                    if (pow2 || fits) begin
                        m_r   <= {{(MUL_BITS-1){1'b0}}, 1'b1};
                        sh_r  <= pow2 ? k2 : {SH_BITS{1'b0}};
                        state  <= S_OUT;
                    end else begin
                        state <= S_DIV;
                    end
                end
                S_DIV: begin
                    div_busy <= 1'b1;
                    if (div_done) begin
                        div_busy <= 1'b0;
                        m_r      <= m_div;
                        sh_r     <= sh0 + low;
                        state    <= S_OUT;
                    end
                end
                default: begin             // S_OUT: one beat per cycle while out_ready
                    if (!out_valid || out_ready) begin
                        out_valid <= 1'b1;
                        out_data  <= y_all;
                        out_m     <= m_r;
                        out_sh    <= sh_r;
                        out_last  <= rp == nbeat;
                        rp        <= rp + 1'b1;
                        if (rp == nbeat) begin
                            big   <= 0;
                            state <= S_IN;
                        end
                    end
                end
            endcase
            if (out_valid && out_ready && !(state == S_OUT)) out_valid <= 1'b0;
        end
    end

    // y = round(v m / 2^sh) per lane (itx_dyadic, one rounding); |y| <= q, so the low OUT_BITS hold it
    wire [LANES*VW-1:0]       row = mem[rp];
    wire [LANES*OUT_BITS-1:0] y_all;
    genvar i;
    generate
        for (i = 0; i < LANES; i = i + 1) begin : g_lane
            /* verilator lint_off UNUSEDSIGNAL */
            wire [VW+MUL_BITS+1:0] y;
            /* verilator lint_on UNUSEDSIGNAL */
            itx_dyadic #(.XW(VW), .MW(MUL_BITS), .SW(SH_BITS)) u_y (.x(row[i*VW +: VW]), .m(m_r), .sh(sh_r),
                                                                 .rnd(rnd), .dbl(1'b0), .y(y));
            assign y_all[i*OUT_BITS +: OUT_BITS] = y[OUT_BITS-1:0];
        end
    endgenerate
endmodule
