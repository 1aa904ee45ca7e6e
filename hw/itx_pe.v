// Output-stationary MAC cell: one signed multiply-accumulate per valid step into an accumulator of ACC_BITS.
// The operands come from the array's row/column shift registers; the step flags from the controller, per
// anti-diagonal. Every PE sees step k of its tile exactly once, in k order: the golden ordered accumulation.
// No state needs a reset: step v gates every update.
module itx_pe #(
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0   // 0: wrap (two's complement), 1: clip to ACC_BITS after every MAC
) (
    input  wire                       clk,
    input  wire [2:0]                 step,   // {v: a and b hold a real step (array enabled), f: first step
                                              //  of a tile, restart the accumulator, l: last step, publish}
    input  wire signed [IN_BITS-1:0]  a_in,
    input  wire signed [IN_BITS-1:0]  b_in,
    output reg  signed [ACC_BITS-1:0] res     // sum of the last finished tile
);
    reg signed [ACC_BITS-1:0] acc;

    // One clocked block and one 3-bit case per PE: Icarus loads step, a, b and acc once per cycle (a
    // variable load is its costliest operation), and an l step publishes without writing acc.
    generate
        if (SATURATE == 0) begin : g_wrap
            // signed operands extend to ACC_BITS before the multiply; the sum wraps mod 2^ACC_BITS
            always @(posedge clk) begin
                case (step)
                    3'b100: acc <= acc + a_in * b_in;
                    3'b110: acc <= a_in * b_in;
                    3'b101: res <= acc + a_in * b_in;
                    3'b111: res <= a_in * b_in;
                    default: ;
                endcase
            end
        end else begin : g_sat
            localparam PW = 2 * IN_BITS;
            localparam SW = (ACC_BITS > PW ? ACC_BITS : PW) + 1;  // acc + product never overflows SW bits
            localparam signed [SW-1:0] ACC_MAX = {{(SW - ACC_BITS + 1){1'b0}}, {(ACC_BITS - 1){1'b1}}};
            localparam signed [SW-1:0] ACC_MIN = {{(SW - ACC_BITS + 1){1'b1}}, {(ACC_BITS - 1){1'b0}}};
            localparam signed [SW-1:0] ZERO    = {SW{1'b0}};
            wire signed [SW-1:0] acc_x = {{(SW - ACC_BITS){acc[ACC_BITS-1]}}, acc};

            // (f ? 0 : acc) + a*b in SW bits, clipped to the ACC_BITS range
            function signed [ACC_BITS-1:0] mac(input signed [SW-1:0] base, input signed [IN_BITS-1:0] a,
                                               input signed [IN_BITS-1:0] b);
                reg signed [SW-1:0] sum;
                begin
                    sum = base + a * b;
                    if (sum > ACC_MAX) mac = ACC_MAX[ACC_BITS-1:0];
                    else if (sum < ACC_MIN) mac = ACC_MIN[ACC_BITS-1:0];
                    else mac = sum[ACC_BITS-1:0];
                end
            endfunction

            always @(posedge clk) begin
                case (step)
                    3'b100: acc <= mac(acc_x, a_in, b_in);
                    3'b110: acc <= mac(ZERO, a_in, b_in);
                    3'b101: res <= mac(acc_x, a_in, b_in);
                    3'b111: res <= mac(ZERO, a_in, b_in);
                    default: ;
                endcase
            end
        end
    endgenerate
endmodule
