// Output-stationary processing element: one signed MAC per enabled cycle, accumulator of ACC_BITS.
// Operands are registered and forwarded (A to the right, B downwards); the step flags come from the
// controller per anti-diagonal. Every PE sees step k of its tile exactly once, in k order: the golden
// ordered accumulation. No state needs a reset: v_in gates every update.
module itx_pe #(
    parameter IN_BITS  = 8,
    parameter ACC_BITS = 32,
    parameter SATURATE = 0   // 0: wrap (two's complement), 1: clip to ACC_BITS after every MAC
) (
    input  wire                       clk,
    input  wire                       en,     // global advance; 0 freezes the whole array
    input  wire signed [IN_BITS-1:0]  a_in,
    input  wire signed [IN_BITS-1:0]  b_in,
    input  wire                       v_in,   // a and b hold a real step
    input  wire                       f_in,   // first step of a tile: restart the accumulator
    input  wire                       l_in,   // last step of a tile: publish the sum in res
    output reg  signed [IN_BITS-1:0]  a_out,
    output reg  signed [IN_BITS-1:0]  b_out,
    output reg  signed [ACC_BITS-1:0] res
);
    localparam PW = 2 * IN_BITS;
    localparam SW = (ACC_BITS > PW ? ACC_BITS : PW) + 1;  // acc + product never overflows SW bits
    localparam signed [SW-1:0] ACC_MAX = {{(SW - ACC_BITS + 1){1'b0}}, {(ACC_BITS - 1){1'b1}}};
    localparam signed [SW-1:0] ACC_MIN = {{(SW - ACC_BITS + 1){1'b1}}, {(ACC_BITS - 1){1'b0}}};

    reg signed [ACC_BITS-1:0] acc;
    reg signed [PW-1:0]       prod;
    reg signed [SW-1:0]       sum;
    reg signed [ACC_BITS-1:0] nxt;

    // One clocked block per PE: far faster under Icarus than continuous-assign MACs.
    always @(posedge clk) begin
        if (en) begin
            a_out <= a_in;
            b_out <= b_in;
            if (v_in) begin
                prod = a_in * b_in;
                // explicit sign extension to SW bits (no implicit width rules to trip over)
                if (f_in) sum = {{(SW - PW){prod[PW-1]}}, prod};
                else sum = {{(SW - ACC_BITS){acc[ACC_BITS-1]}}, acc} + {{(SW - PW){prod[PW-1]}}, prod};
                if (SATURATE != 0 && sum > ACC_MAX) nxt = ACC_MAX[ACC_BITS-1:0];
                else if (SATURATE != 0 && sum < ACC_MIN) nxt = ACC_MIN[ACC_BITS-1:0];
                else nxt = sum[ACC_BITS-1:0];
                acc <= nxt;
                if (l_in) res <= nxt;
            end
        end
    end
endmodule
