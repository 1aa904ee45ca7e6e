// ROWS x COLS output-stationary systolic array of itx_pe. Row r takes A from the left, column c takes B
// from the top (the caller skews row r and column c by r and c cycles); PE (r, c) takes the step flags of
// anti-diagonal r + c, which the caller delays by r + c cycles.
// Nets are per PE (net arrays, not one wide bus): Icarus then only wakes the PE whose input changed.
module itx_array #(
    parameter ROWS     = 8,
    parameter COLS     = 8,
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0
) (
    input  wire                            clk,
    input  wire                            en,
    input  wire [ROWS*IN_BITS-1:0]         a_left,
    input  wire [ROWS+COLS-2:0]            v_diag,   // step flags of anti-diagonal r + c
    input  wire [ROWS+COLS-2:0]            f_diag,
    input  wire [ROWS+COLS-2:0]            l_diag,
    input  wire [COLS*IN_BITS-1:0]         b_top,
    output wire [ROWS*COLS*ACC_BITS-1:0]   res      // PE (r, c) at index r*COLS + c
);
    localparam HW = COLS + 1;  // horizontal nets per row: left edge + one per PE output
    wire [IN_BITS-1:0] ah [0:ROWS*HW-1];
    wire [IN_BITS-1:0] bv [0:(ROWS+1)*COLS-1];

    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_left
            assign ah[r*HW] = a_left[r*IN_BITS +: IN_BITS];
        end
        for (c = 0; c < COLS; c = c + 1) begin : g_top
            assign bv[c] = b_top[c*IN_BITS +: IN_BITS];
        end
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                itx_pe #(.IN_BITS(IN_BITS), .ACC_BITS(ACC_BITS), .SATURATE(SATURATE)) pe (
                    .clk(clk), .en(en),
                    .a_in(ah[r*HW+c]), .b_in(bv[r*COLS+c]),
                    .v_in(v_diag[r+c]), .f_in(f_diag[r+c]), .l_in(l_diag[r+c]),
                    .a_out(ah[r*HW+c+1]), .b_out(bv[(r+1)*COLS+c]),
                    .res(res[(r*COLS+c)*ACC_BITS +: ACC_BITS])
                );
            end
        end
    endgenerate
endmodule
