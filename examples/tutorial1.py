"""Tutorial 1's full program ("MyLinear"), as published, in plain PyTorch: the baseline linear_pl
is measured against (`python -m benchmarks` times it beside `scripts/train.py --preset seed-7w`).

Only the comments and the printed text are translated; the code is the tutorial's.
"""

import random
import sys

import numpy as np
import torch
import torch.nn as nn

# The published program is unseeded; seeding makes a run reproducible.
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 0
random.seed(SEED)
torch.manual_seed(SEED)

# ----------------------------------------------------------
# Make the training data
# ----------------------------------------------------------
# The true weights: what training should recover.
w_list = np.array([2, 3, 4, 7, 11, 5, 13])
# 10 random input samples, each as long as w_list.
x_list = []
for _ in range(10):
    x_sample = np.array([random.randint(1, 100) for _ in range(len(w_list))])
    x_list.append(x_sample)
# The targets: the dot product of each input with the true weights.
y_list = []
for x_sample in x_list:
    y_temp = x_sample @ w_list
    y_list.append(y_temp)


# ----------------------------------------------------------
# Define the model
# ----------------------------------------------------------
class MyLinear(nn.Module):
    def __init__(self):
        super().__init__()
        # The learnable parameters, as many as w_list, randomly initialised.
        self.w = nn.Parameter(torch.randn(len(w_list), dtype=torch.float32))
        print("Initial weights:", self.w)

    def forward(self, x: torch.Tensor):
        # Forward pass: the dot product of the weights and the input.
        return self.w @ x


model = MyLinear()  # on the CPU
loss_fn = nn.MSELoss()  # mean squared error
optimizer = torch.optim.SGD(model.parameters(), lr=0.00001)  # stochastic gradient descent
x_input = torch.tensor(x_list, dtype=torch.float32)
y_output = torch.tensor(y_list, dtype=torch.float32)

# ----------------------------------------------------------
# Train
# ----------------------------------------------------------
num_epochs = 200
for epoch in range(num_epochs):
    for i, x in enumerate(x_input):
        y_pred = model(x)  # forward
        loss = loss_fn(y_pred, y_output[i])  # compare the prediction with the truth
        optimizer.zero_grad()  # clear the previous gradients
        loss.backward()  # compute the gradients
        optimizer.step()  # update the parameters
    if (epoch + 1) % 10 == 0:
        print(f"Epoch [{epoch + 1}/{num_epochs}], Loss: {loss.item():.4f}")
print("Training completed")
print("Final weights:", model.w.detach().numpy())
