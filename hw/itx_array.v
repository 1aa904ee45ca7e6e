// ROWS x COLS output-stationary systolic array of itx_pe with its operand shift registers and result rows.
// A moves right through one shift register per row, B down through one per column: stage s holds the value
// that entered s+1 enabled cycles ago, and stage r + c feeds PE (r, c). Row r's first r stages and column c's
// first c stages are the input skew; the rest are the systolic operand registers. PE (r, c) takes the step
// flags of anti-diagonal r + c, which the caller delays by r + c + 1 cycles to match.
// ld copies every PE's published sum into the result rows; each sh moves them up one row, so row_out shows
// rows 0, 1, 2, ... of the finished tile in turn (the output buffer, drained in row order).
// Every net has a single driver and buses are chains of whole-net concatenations: Icarus then propagates
// only what changed and never resolves partial drivers bit by bit.
module itx_array #(
    parameter ROWS     = 8,
    parameter COLS     = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire                      clk,
    input  wire                      en,       // 0 freezes the shift registers and the PEs
    input  wire [ROWS*IN_BITS-1:0]   in_a,     // lane r: A[row r of the tile][k], not skewed
    input  wire [COLS*IN_BITS-1:0]   in_b,     // lane c: B[k][column c of the tile], not skewed
    input  wire [ROWS+COLS-2:0]      v_diag,   // step flags of anti-diagonal r + c
    input  wire [ROWS+COLS-2:0]      f_diag,
    input  wire [ROWS+COLS-2:0]      l_diag,
    input  wire                      ld,       // load the result rows from the PEs
    input  wire                      sh,       // move the result rows up by one
    output wire [COLS*ACC_BITS-1:0]  row_out   // the top result row, lane c = column c
);
    localparam ND = ROWS + COLS - 1;
    wire [ND-1:0] v_en = v_diag & {ND{en}};  // a frozen array does no step

    genvar r, c;
    generate
        // operand shift registers: skew (untapped), then tap c of row r / tap r of column c feeds PE (r, c)
        for (r = 0; r < ROWS; r = r + 1) begin : g_arow
            wire [COLS*IN_BITS-1:0] tap;
            itx_shift #(.W(IN_BITS), .SKIP(r), .TAPS(COLS)) u_sr (
                .clk(clk), .en(en), .d(in_a[r*IN_BITS +: IN_BITS]), .q(tap));
        end
        for (c = 0; c < COLS; c = c + 1) begin : g_bcol
            wire [ROWS*IN_BITS-1:0] tap;
            itx_shift #(.W(IN_BITS), .SKIP(c), .TAPS(ROWS)) u_sr (
                .clk(clk), .en(en), .d(in_b[c*IN_BITS +: IN_BITS]), .q(tap));
        end

        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                wire [ACC_BITS-1:0] res;
                itx_pe #(.IN_BITS(IN_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) pe (
                    .clk(clk), .step({v_en[r+c], f_diag[r+c], l_diag[r+c]}),
                    .a_in(g_arow[r].tap[c*IN_BITS +: IN_BITS]),
                    .b_in(g_bcol[c].tap[r*IN_BITS +: IN_BITS]),
                    .res(res)
                );
                wire [(c+1)*ACC_BITS-1:0] sums;  // res of PEs (r, 0..c)
                if (c == 0) begin : g_first
                    assign sums = res;
                end else begin : g_next
                    assign sums = {res, g_col[c-1].sums};
                end
            end
            reg  [COLS*ACC_BITS-1:0] result;
            wire [COLS*ACC_BITS-1:0] below;
            if (r == ROWS - 1) begin : g_bottom
                assign below = {(COLS*ACC_BITS){1'b0}};
            end else begin : g_up
                assign below = g_row[r+1].result;
            end
            always @(posedge clk) begin
                if (ld) result <= g_col[COLS-1].sums;
                else if (sh) result <= below;
            end
        end
    endgenerate
    assign row_out = g_row[0].result;
endmodule
