// Tapped shift register with enable: d is delayed SKIP untapped stages, then TAPS tapped ones; tap t
// (q[t*W +: W]) is the d that entered SKIP + t + 1 enabled cycles ago. One clocked block moves the whole
// vector (cheaper under Icarus than a block per stage or a register array).
module itx_shift #(
    parameter W    = 8,
    parameter SKIP = 0,
    parameter TAPS = 1
) (
    input  wire              clk,
    input  wire              en,
    input  wire [W-1:0]      d,
    output wire [TAPS*W-1:0] q
);
    localparam DEPTH = SKIP + TAPS;
    reg [DEPTH*W-1:0] sr;
    generate
        if (DEPTH == 1) begin : g_one
            always @(posedge clk) if (en) sr <= d;
        end else begin : g_shift
            always @(posedge clk) if (en) sr <= {sr[(DEPTH-1)*W-1:0], d};
        end
    endgenerate
    assign q = sr[DEPTH*W-1:SKIP*W];
endmodule
