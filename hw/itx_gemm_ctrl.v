// Tile controller: streams C = A (M x K) * B (K x N) through an itx_array.
// Input stream, one beat per step k of an output tile (tiles in order tm-major, tn-minor):
//   in_a[r] = A[tm*ROWS + r][k], in_b[c] = B[k][tn*COLS + c]  (pad rows >= M / cols >= N with anything).
// Output stream, one beat per valid row of a tile (rows >= M are skipped): out_data[c] = C[m][tn*COLS + c];
// the consumer drops columns >= N. out_last marks the last beat of a GEMM.
// cfg_m/k/n (all >= 1) are sampled on the first beat of each GEMM, so GEMMs can follow back to back.
module itx_gemm_ctrl #(
    parameter ROWS     = 8,
    parameter COLS     = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0,
    parameter DIM_BITS = 16
) (
    input  wire                       clk,
    input  wire                       rst,          // synchronous, active high; legal mid-stream
    input  wire [DIM_BITS-1:0]        cfg_m,
    input  wire [DIM_BITS-1:0]        cfg_k,
    input  wire [DIM_BITS-1:0]        cfg_n,
    input  wire                       in_valid,
    output wire                       in_ready,
    input  wire [ROWS*IN_BITS-1:0]    in_a,
    input  wire [COLS*IN_BITS-1:0]    in_b,
    output wire                       out_valid,
    input  wire                       out_ready,
    output wire [COLS*ACC_BITS-1:0]   out_data,
    output wire                       out_last
);
    // A tile's last step, accepted in cycle x, is in PE (r, c) in cycle x+1+r+c; PE (R-1, C-1) publishes its
    // res at the end of cycle x+ROWS+COLS-1, so the tile is complete (and copied out) in cycle x+LAT.
    localparam LAT = ROWS + COLS;
    // PE (0, 0) republishes res at the end of cycle x'+1 for the next tile's last step x': keep it after the
    // copy, i.e. last steps of successive tiles at least GAP enabled cycles apart (binds only for small K).
    localparam GAP = ROWS + COLS - 1;
    localparam RW  = $clog2(ROWS + 1);
    localparam [DIM_BITS-1:0] ROWS_D = ROWS[DIM_BITS-1:0];  // dimension-width copies keep comparisons width-clean
    localparam [DIM_BITS-1:0] COLS_D = COLS[DIM_BITS-1:0];
    localparam [DIM_BITS-1:0] GAP_D  = GAP[DIM_BITS-1:0];

    // ---- input side: tile/step counters --------------------------------------------------------------
    reg                busy;                    // inside a GEMM (dimensions latched)
    reg [DIM_BITS-1:0] k_len, n_len, k_cnt, n_rem, m_rem;
    reg [DIM_BITS-1:0] gap;
    wire [DIM_BITS-1:0] k_now = busy ? k_len : cfg_k;
    wire [DIM_BITS-1:0] n_now = busy ? n_rem : cfg_n;
    wire [DIM_BITS-1:0] m_now = busy ? m_rem : cfg_m;
    wire first  = (k_cnt == 0);
    wire last_k = (k_cnt == k_now - 1'b1);
    wire last_n = (n_now <= COLS_D);
    wire last_m = (m_now <= ROWS_D);
    wire [RW-1:0] tile_rows = last_m ? m_now[RW-1:0] : ROWS[RW-1:0];

    // ---- done pipeline: tile tag travels LAT enabled cycles behind its last step ----------------------
    reg [LAT-1:0]    dl_v, dl_last;
    reg [LAT*RW-1:0] dl_rows;
    wire done_v = dl_v[LAT-1];

    // ---- output side: one tile of results in the array's result rows, drained a row per beat -----------
    reg          ob_busy, ob_last;
    reg [RW-1:0] ob_rows, rd;
    wire out_fire  = ob_busy && out_ready;
    wire drain_end = out_fire && (rd == ob_rows - 1'b1);
    wire copy      = done_v && (!ob_busy || drain_end);
    // Freeze everything while a finished tile waits for the output buffer.
    wire en        = !done_v || copy;

    assign in_ready  = en && (!last_k || gap >= GAP_D);
    assign out_valid = ob_busy;
    assign out_last  = ob_last && (rd == ob_rows - 1'b1);
    wire fire = in_valid && in_ready;

    always @(posedge clk) begin
        if (rst) begin
            busy  <= 1'b0;
            k_cnt <= 0;
            gap   <= GAP_D;
        end else if (en) begin
            if (fire) begin
                if (!busy) begin  // latch the GEMM's dimensions (overridden below if it is a 1-step tile)
                    k_len <= cfg_k;
                    n_len <= cfg_n;
                    n_rem <= cfg_n;
                    m_rem <= cfg_m;
                end
                busy  <= !(last_k && last_n && last_m);
                k_cnt <= last_k ? 0 : k_cnt + 1'b1;
                if (last_k) begin
                    n_rem <= last_n ? (busy ? n_len : cfg_n) : n_now - COLS_D;
                    m_rem <= last_n ? m_now - ROWS_D : m_now;
                end
            end
            if (fire && last_k) gap <= 1;
            else if (gap < GAP_D) gap <= gap + 1'b1;
        end
    end

    // vectors, not arrays: one shift each per cycle
    always @(posedge clk) begin
        if (rst) begin
            dl_v <= 0;
        end else if (en) begin
            dl_v    <= {dl_v[LAT-2:0], fire && last_k};
            dl_last <= {dl_last[LAT-2:0], last_n && last_m};
            dl_rows <= {dl_rows[(LAT-1)*RW-1:0], tile_rows};
        end
    end

    // ---- step flags {v, f, l} of anti-diagonal d = r + c: the accepted beat's flags delayed d + 1 cycles, as
    // its operands are by the array's shift registers (one vector each: the PEs need no flag registers).
    localparam ND = ROWS + COLS - 1;
    reg [ND-1:0] v_diag, f_diag, l_diag;

    generate
        if (ND == 1) begin : g_one  // 1x1 array
            always @(posedge clk) begin
                if (rst) v_diag <= 1'b0;
                else if (en) {v_diag, f_diag, l_diag} <= {fire, first, last_k};
            end
        end else begin : g_shift
            always @(posedge clk) begin
                if (rst) begin
                    v_diag <= 0;
                end else if (en) begin
                    v_diag <= {v_diag[ND-2:0], fire};
                    f_diag <= {f_diag[ND-2:0], first};
                    l_diag <= {l_diag[ND-2:0], last_k};
                end
            end
        end
    endgenerate

    itx_array #(.ROWS(ROWS), .COLS(COLS), .IN_BITS(IN_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) u_array (
        .clk(clk), .en(en), .in_a(in_a), .in_b(in_b), .v_diag(v_diag), .f_diag(f_diag), .l_diag(l_diag),
        .ld(copy), .sh(out_fire), .row_out(out_data)
    );

    always @(posedge clk) begin
        if (rst) begin
            ob_busy <= 1'b0;
            rd      <= 0;
        end else if (copy) begin
            ob_busy <= 1'b1;
            ob_last <= dl_last[LAT-1];
            ob_rows <= dl_rows[(LAT-1)*RW +: RW];
            rd      <= 0;
        end else if (out_fire) begin
            rd <= rd + 1'b1;
            if (drain_end) ob_busy <= 1'b0;
        end
    end
endmodule
