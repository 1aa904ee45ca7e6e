// Sequential restoring divider: q = n div d, r = n mod d for unsigned n, d (d >= 1), one quotient bit per
// cycle, NW cycles from start to done. start is accepted when ready (not busy); done pulses for one cycle and
// q, r hold until the next start. d = 0 gives q = all ones, r = n's low bits (never used: golden d >= 1).
module itx_divider #(
    parameter NW = 33,   // dividend width
    parameter DW = 32    // divisor width
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          start,
    input  wire [NW-1:0] n,
    input  wire [DW-1:0] d,
    output wire          ready,
    output reg           done,
    output reg  [NW-1:0] q,
    output reg  [DW-1:0] r
);
    localparam CW = $clog2(NW + 1);
    reg  [CW-1:0] cnt;
    reg  [DW-1:0] dv;
    wire [DW:0]   trial = {r, q[NW-1]};
    wire          take  = trial >= {1'b0, dv};
    wire [DW-1:0] diff  = trial[DW-1:0] - dv;          // exact when take: trial - dv < dv
    assign ready = cnt == 0;

    always @(posedge clk) begin
        if (rst) begin
            cnt  <= 0;
            done <= 1'b0;
        end else if (start && ready) begin
            q    <= n;
            r    <= 0;
            dv   <= d;
            cnt  <= NW[CW-1:0];
            done <= 1'b0;
        end else begin
            done <= cnt == 1;
            if (cnt != 0) begin
                q   <= {q[NW-2:0], take};
                r   <= take ? diff : trial[DW-1:0];
                cnt <= cnt - 1'b1;
            end
        end
    end
endmodule
